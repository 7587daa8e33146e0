# shellcheck shell=bash
# Shared paths, pins and helpers for the project's install and local-AWS scripts.
# Sourced, never executed. Everything the scripts install lives under .local/ (gitignored).

# Strict mode is the caller's business, but every script here sets it; be safe if sourced alone.
set -euo pipefail

RESIZER_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL_DIR="$RESIZER_ROOT/.local"

# --- pins -------------------------------------------------------------------------------------
# Python: the system CPython 3.11 (LocalStack 4.9.2's dependency set is resolved for it).
PYTHON_MINOR_PIN="3.11"
UV_VERSION="0.13.8"
APT_PINS=("cmake=3.25.1-1" "nasm=2.16.01-1")
# For arm64 (`make package ARCH=arm64`, `make smoke-arm64`) only: qemu-user and the arm64 glibc it
# loads the functions' dynamically linked binaries with (as on Lambda's provided.al2023).
APT_PINS_ARM64=("qemu-user-static=1:7.2+dfsg-7+deb12u18+b3" "libc6-arm64-cross=2.36-8cross1" "libgcc-s1-arm64-cross=12.2.0-14cross1")
RUST_TARGET_ARM64="aarch64-unknown-linux-gnu"
# The arm64 sysroot of libc6-arm64-cross, and how the local process executor runs arm64 binaries.
ARM64_SYSROOT="/usr/aarch64-linux-gnu"

# --- layout -----------------------------------------------------------------------------------
UV_VENV="$LOCAL_DIR/uv"
UV_BIN="$UV_VENV/bin/uv"
TOOLS_VENV="$LOCAL_DIR/tools/venv"
LS_HOME="$LOCAL_DIR/localstack"
LS_VENV="$LS_HOME/venv"
LS_STATE="$LS_HOME/state"            # LocalStack's FILESYSTEM_ROOT
LS_LIBS="$LS_STATE/var/lib/localstack/lib"
LS_PIDFILE="$LS_HOME/localstack.pid"
LS_LOG="$LS_HOME/localstack.log"
DDB_HOME="$LOCAL_DIR/dynamodb-local"
STAMPS="$LOCAL_DIR/stamps"

# The local AWS endpoint. Only loopback; the port can be moved if 4566 is taken.
LOCAL_AWS_HOST="127.0.0.1"
LOCAL_AWS_PORT="${RESIZER_LOCAL_AWS_PORT:-4566}"
LOCAL_AWS_ENDPOINT="http://$LOCAL_AWS_HOST:$LOCAL_AWS_PORT"
LOCAL_STACK_NAME="resizer-local"
LOCAL_REGION="us-east-1"
LS_SERVICES="s3,sqs,dynamodb,cloudformation,lambda,apigateway,events,scheduler,iam,sts,logs,cloudwatch,sns"

# The fault proxy (crates/faults, the chaos suite's fault injector) sits between the function
# processes and the local AWS: LocalStack gives the functions AWS_ENDPOINT_URL=<the proxy>, and the
# proxy forwards every call unchanged while no fault is active. RESIZER_FAULT_PROXY=0 (when the
# local AWS starts) leaves it out. Its port defaults to the local AWS's port + 1.
FAULT_PROXY_ENABLED="${RESIZER_FAULT_PROXY:-1}"
FAULT_PROXY_PORT="${RESIZER_FAULT_PROXY_PORT:-$((LOCAL_AWS_PORT + 1))}"
FAULT_PROXY_ENDPOINT="http://$LOCAL_AWS_HOST:$FAULT_PROXY_PORT"
FAULT_PROXY_PIDFILE="$LS_HOME/fault-proxy.pid"
FAULT_PROXY_LOG="$LS_HOME/fault-proxy.log"
# What the running LocalStack gives its functions as AWS_ENDPOINT_URL (written by up.sh).
LS_FUNCTION_ENDPOINT_FILE="$LS_HOME/function-endpoint"

# Where a region's local stack files go: .local for the default region, .local/regions/<r> else.
region_dir() {
    if [[ "$1" == "$LOCAL_REGION" ]]; then
        printf '%s\n' "$LOCAL_DIR"
    else
        printf '%s\n' "$LOCAL_DIR/regions/$1"
    fi
}

# Where cargo builds the function binaries the local stack deploys (dev profile: quick to build,
# the engine and codecs optimised; see Cargo.toml).
function_bin_dir() {
    printf '%s\n' "${RESIZER_BIN_DIR:-${CARGO_TARGET_DIR:-$RESIZER_ROOT/target}/debug}"
}

# uv: never download a Python, never read a user's uv.toml, keep the cache where it is by default.
export UV_PYTHON_DOWNLOADS=never
export UV_NO_CONFIG=1

# --- output -----------------------------------------------------------------------------------
log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# --- helpers ----------------------------------------------------------------------------------

# sha256 of the given files' contents (and names), for install stamps.
hash_files() {
    local f
    for f in "$@"; do
        printf '%s\n' "${f#"$RESIZER_ROOT"/}"
        cat "$f"
    done | sha256sum | cut -d' ' -f1
}

# stamp_ok NAME HASH: true when step NAME was completed with inputs HASH.
stamp_ok() { [[ -f "$STAMPS/$1" && "$(cat "$STAMPS/$1")" == "$2" ]]; }
stamp_write() {
    mkdir -p "$STAMPS"
    printf '%s\n' "$2" >"$STAMPS/$1"
}

# The system Python used to bootstrap (override with RESIZER_PYTHON).
system_python() {
    local py="${RESIZER_PYTHON:-python3}"
    command -v "$py" >/dev/null 2>&1 || die "$py not found: a CPython $PYTHON_MINOR_PIN is required (set RESIZER_PYTHON to its path)"
    local v
    v="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    [[ "$v" == "$PYTHON_MINOR_PIN" ]] || die "$py is Python $v; CPython $PYTHON_MINOR_PIN is required (set RESIZER_PYTHON to its path)"
    command -v "$py"
}

# ensure_uv: the pinned uv in its own small venv, installed by the system pip from a hash-pinned file.
ensure_uv() {
    local want="uv $UV_VERSION"
    if [[ -x "$UV_BIN" ]] && [[ "$("$UV_BIN" --version 2>/dev/null | cut -d' ' -f1-2)" == "$want" ]]; then
        return 0
    fi
    local py
    py="$(system_python)"
    log "bootstrapping $want into ${UV_VENV#"$RESIZER_ROOT"/}"
    rm -rf "$UV_VENV"
    "$py" -m venv "$UV_VENV"
    "$UV_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        --require-hashes --no-deps --only-binary=:all: -r "$RESIZER_ROOT/tools/uv.requirements.txt"
    [[ "$("$UV_BIN" --version | cut -d' ' -f1-2)" == "$want" ]] || die "uv bootstrap did not produce $want"
}

# make_venv DIR: a fresh venv on the system Python, made by uv.
make_venv() {
    local py
    py="$(system_python)"
    rm -rf "$1"
    "$UV_BIN" venv --quiet --python "$py" "$1"
}

# ls_our_pid: print the PID of the LocalStack that `localstack/up.sh` started from this checkout,
# if it is still running (guards against a stale PID file and PID reuse).
ls_our_pid() {
    [[ -f "$LS_PIDFILE" ]] || return 1
    local pid
    pid="$(cat "$LS_PIDFILE" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    local cmdline
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    [[ "$cmdline" == "$LS_VENV/bin/python -m localstack.runtime.main"* ]] || return 1
    printf '%s\n' "$pid"
}

# fp_our_pid: print the PID of the fault proxy that up.sh started from this checkout, if it is
# still running on the configured port.
fp_our_pid() {
    [[ -f "$FAULT_PROXY_PIDFILE" ]] || return 1
    local pid
    pid="$(cat "$FAULT_PROXY_PIDFILE" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    local cmdline
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    [[ "$cmdline" == *"resizer-faults --listen $LOCAL_AWS_HOST:$FAULT_PROXY_PORT "* ]] || return 1
    printf '%s\n' "$pid"
}

# ls_probe: true when some LocalStack answers on the local endpoint.
ls_probe() {
    [[ -x "$LS_VENV/bin/python" ]] || return 1
    "$LS_VENV/bin/python" "$RESIZER_ROOT/localstack/health.py" probe "$LOCAL_AWS_ENDPOINT"
}

# lock_local_aws: serialise up/down/provision of this checkout (e.g. `make dev` in two terminals).
lock_local_aws() {
    mkdir -p "$LS_HOME"
    exec 9>"$LS_HOME/.lock"
    if ! flock -n 9; then
        log "waiting for another up/down/provision of this checkout to finish"
        flock 9
    fi
}
