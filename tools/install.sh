#!/usr/bin/env bash
# Install the build tools: pinned system packages (cmake, nasm) when missing, and the tools venv
# (aws-sam-cli, aws-sam-cli-local, cargo-lambda, cfn-lint) from tools/requirements.lock.
# Idempotent: each step is skipped when its stamp matches its inputs.
#
# usage: tools/install.sh [system|venv|arm64|all]   (default: all; arm64 is not part of all: see
#        install_arm64)
set -euo pipefail
# shellcheck source=tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# install_system_packages [PIN...]: the given apt pins (default: APT_PINS) that are missing.
install_system_packages() {
    local pin name version have missing=()
    (($# > 0)) || set -- "${APT_PINS[@]}"
    for pin in "$@"; do
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

# The arm64 build and its smoke: qemu-user and the arm64 glibc, and the Rust standard library for
# aarch64 of the pinned toolchain (rust-toolchain.toml; rustup is a no-op when it is there).
install_arm64() {
    install_system_packages "${APT_PINS_ARM64[@]}"
    (cd "$RESIZER_ROOT" && rustup target add "$RUST_TARGET_ARM64" >/dev/null 2>&1) ||
        die "rustup target add $RUST_TARGET_ARM64 failed"
}

case "${1:-all}" in
system) install_system_packages ;;
arm64) install_arm64 ;;
venv) install_tools_venv ;;
all)
    install_system_packages
    install_tools_venv
    ;;
*) die "usage: $0 [system|venv|arm64|all]" ;;
esac
