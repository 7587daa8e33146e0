#!/usr/bin/env bash
# Deploy template.yaml, with the function binaries built for this host, into the running local AWS as
# the stack "resizer-local" (credentials test/test), with its triggers on: LocalStack's event source
# mappings feed the resize function and its rule runs the aggregator; the api function gets a
# function URL. Local values: the aggregator every minute, a 5 s auth cache (revocations and quotas
# bite quickly), a 10 s resize timeout (so a 60 s visibility timeout), and a retry path measured in
# seconds and minutes rather than hours (2 receives, 2 s backoff doubling to 20 s, jobs that come out
# of the dead-letter queue older than 15 minutes expire), so that the tests see it whole; an hour of
# usage is closed in 4 slices (not 16: every slice is a process and 128 queries on this machine); a
# web page served locally on port 5173 (a front-end dev server's usual port) may call the API and
# upload from the browser (CorsAllowedOrigins). Writes .local/stack.env and
# .local/stack-outputs.json. A redeploy of an unchanged template, parameters and binaries is a
# no-op. See provision.py.
#
# env: RESIZER_REGION   the region to deploy to (default us-east-1); another region's stack is
#                       separate and writes its files under .local/regions/<region>/
#      RESIZER_BIN_DIR  where the functions' binaries are (default: cargo's target/debug)
#      RESIZER_SAM_BUILD_DIR  deploy `sam build`'s artifacts from this directory instead
#                       (<dir>/<logical id>/bootstrap; `make smoke-arm64` uses .aws-sam/build)
#      RESIZER_PROVISION_PARAMETERS  more template parameters, "Key=Value Key2=Value2", applied
#                       after (so over) the local ones above; `make chaos` shortens timeouts this way
set -euo pipefail
# shellcheck source=tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tools/lib.sh"

lock_local_aws
[[ -x "$LS_VENV/bin/python" ]] || die "the local AWS is not installed (run: make setup)"
ls_probe || die "no local AWS answers at $LOCAL_AWS_ENDPOINT (run: make up)"

region="${RESIZER_REGION:-$LOCAL_REGION}"
code=()
[[ -n "${RESIZER_SAM_BUILD_DIR:-}" ]] && code=(--sam-build-dir "$RESIZER_SAM_BUILD_DIR")
extra=()
for p in ${RESIZER_PROVISION_PARAMETERS:-}; do
    [[ "$p" == *=* ]] || die "RESIZER_PROVISION_PARAMETERS: $p is not Key=Value"
    extra+=("--parameter=$p")
done
"$LS_VENV/bin/python" "$RESIZER_ROOT/localstack/provision.py" \
    --endpoint "$LOCAL_AWS_ENDPOINT" \
    --region "$region" \
    --stack "$LOCAL_STACK_NAME" \
    --template "$RESIZER_ROOT/template.yaml" \
    --out-dir "$(region_dir "$region")" \
    --bin-dir "$(function_bin_dir)" \
    "${code[@]}" \
    --parameter Stage=local \
    --parameter ApiFunctionUrl=true \
    --parameter AuthCacheTtlSeconds=5 \
    --parameter ResizeTimeout=10 \
    --parameter MaxReceiveCount=2 \
    --parameter RetryBackoffBaseSeconds=2 \
    --parameter RetryBackoffMaxSeconds=20 \
    --parameter MaxJobAgeSeconds=900 \
    --parameter UsageSlices=4 \
    --parameter SweepStaleSeconds=60 \
    --parameter CorsAllowedOrigins=http://localhost:5173,http://127.0.0.1:5173 \
    "--parameter=SweepSchedule=rate(1 minute)" \
    "--parameter=AggregateSchedule=rate(1 minute)" \
    "${extra[@]}"
