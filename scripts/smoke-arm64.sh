#!/usr/bin/env bash
# The arm64 smoke (`make smoke-arm64`, after `make package ARCH=arm64`): the functions exactly as
# `sam build` packages them for arm64 (.aws-sam/build/<function>/bootstrap, aarch64 ELF) are deployed
# with Architecture=arm64 into a local AWS of this run's own, whose process executor runs them under
# qemu-user (Debian's qemu-user-static, with the arm64 glibc of libc6-arm64-cross as on Lambda's
# provided.al2023); then the end-to-end tests that convert images through the deployed api and resize
# functions run against them.
#
# Emulation is 5-20x slower than native, so the resize timeout is 60 s here; speed is not measured
# (bench/ measures it natively). Run it where no local AWS of this checkout runs (make down first):
# the executor reads RESIZER_EMULATOR_ARM64 when LocalStack starts.
#
# usage: scripts/smoke-arm64.sh [test name filters]   (default: the SMOKE_TESTS below)
set -euo pipefail
# shellcheck source=tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tools/lib.sh"
cd "$RESIZER_ROOT"

# The service tests that convert: a JPEG to WebP by its URL, a corrupt image failed precisely, an
# image in its message and a staged one (byte-equal results and usage), a presigned upload.
SMOKE_TESTS=(
    jpeg_job_finishes_done_and_its_url_downloads_the_expected_dimensions
    a_corrupt_image_ends_failed_with_invalid_image
    an_image_in_its_message_and_a_staged_one_give_the_same_result_and_usage
    large_images_go_through_a_presigned_upload
)
(($# > 0)) && SMOKE_TESTS=("$@")

build="$RESIZER_ROOT/.aws-sam/build"
emulator="$(command -v qemu-aarch64-static || true)"
[[ -n "$emulator" ]] || die "qemu-aarch64-static not found (run: tools/install.sh arm64)"
[[ -f "$ARM64_SYSROOT/lib/ld-linux-aarch64.so.1" ]] || die "no arm64 glibc in $ARM64_SYSROOT (run: tools/install.sh arm64)"

# Every packaged function must be an aarch64 executable: e_machine (ELF header offset 18) = 183.
found=0
for bootstrap in "$build"/*/bootstrap; do
    [[ -f "$bootstrap" ]] || continue
    found=$((found + 1))
    [[ "$(head -c 4 "$bootstrap" | od -An -c | tr -d ' ')" == 177ELF ]] || die "$bootstrap is not an ELF binary"
    machine="$(od -An -j18 -N2 -tu2 "$bootstrap" | tr -d ' ')"
    [[ "$machine" == 183 ]] || die "$bootstrap is not aarch64 (ELF machine $machine): run make package ARCH=arm64"
    log "${bootstrap#"$RESIZER_ROOT"/}: aarch64, $(($(stat -c %s "$bootstrap") >> 20)) MiB"
done
((found > 0)) || die "no packaged functions in ${build#"$RESIZER_ROOT"/}: run make package ARCH=arm64"

if pid="$(ls_our_pid)"; then
    die "this checkout's local AWS runs (pid $pid) without the arm64 emulator: stop it (make down) and run the smoke again"
fi

export RESIZER_EMULATOR_ARM64="$emulator -L $ARM64_SYSROOT"
export RESIZER_SAM_BUILD_DIR="$build"
export RESIZER_PROVISION_PARAMETERS="Architecture=arm64 ResizeTimeout=60 ${RESIZER_PROVISION_PARAMETERS:-}"
log "arm64 smoke: ${SMOKE_TESTS[*]}"
# --workspace: the feature set of `make build`, so the test binary is not rebuilt for another one.
# Then the functions' cold starts under emulation, from their REPORT lines: the invocations ran.
# shellcheck disable=SC2016 # expanded by the inner shell
localstack/with-local-aws.sh bash -c 'cargo test --workspace --test service -- --exact --test-threads=2 "$@" &&
    localstack/logs.sh cold-starts' smoke "${SMOKE_TESTS[@]}"
