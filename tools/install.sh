#!/usr/bin/env bash
# Install the build tools: pinned system packages (cmake, nasm) when missing, and the tools venv
# (aws-sam-cli, aws-sam-cli-local, cargo-lambda, cfn-lint) from tools/requirements.lock.
# Idempotent: each step is skipped when its stamp matches its inputs.
#
# usage: tools/install.sh [system|venv|all]   (default: all)
set -euo pipefail
# shellcheck source=tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

install_system_packages() {
    local pin name version have missing=()
    for pin in "${APT_PINS[@]}"; do
        name="${pin%%=*}"
        version="${pin#*=}"
        have="$(dpkg-query -W -f='${db:Status-Abbrev} ${Version}' "$name" 2>/dev/null || true)"
        if [[ "$have" == "ii  $version" ]]; then
            continue
        elif [[ "$have" == ii* ]]; then
            warn "$name ${have#ii  } is installed; the project pins $version (keeping the installed one)"
        else
            missing+=("$pin")
        fi
    done
    ((${#missing[@]} == 0)) && return 0

    log "installing system packages: ${missing[*]}"
    local sudo=()
    if [[ "$(id -u)" != 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "need root (or sudo) to apt-get install ${missing[*]}"
        sudo=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    # A fresh machine may have empty package lists; only refresh them when the pin is not known.
    if ! apt-cache show "${missing[@]}" >/dev/null 2>&1; then
        "${sudo[@]}" apt-get update -qq
    fi
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_tools_venv() {
    local lock="$RESIZER_ROOT/tools/requirements.lock"
    local inputs
    inputs="$(hash_files "$lock") $UV_VERSION"
    if stamp_ok tools-venv "$inputs" && [[ -x "$TOOLS_VENV/bin/sam" ]]; then
        return 0
    fi
    ensure_uv
    log "installing the tools venv (aws-sam-cli, cargo-lambda, cfn-lint) into ${TOOLS_VENV#"$RESIZER_ROOT"/}"
    make_venv "$TOOLS_VENV"
    "$UV_BIN" pip sync --quiet --python "$TOOLS_VENV/bin/python" --require-hashes "$lock"
    stamp_write tools-venv "$inputs"
}

case "${1:-all}" in
system) install_system_packages ;;
venv) install_tools_venv ;;
all)
    install_system_packages
    install_tools_venv
    ;;
*) die "usage: $0 [system|venv|all]" ;;
esac
