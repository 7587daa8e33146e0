#!/usr/bin/env bash
# Property-based tests of the running API against openapi.yaml (schemathesis), and a validation of
# the spec itself (openapi-spec-validator). Starts its own `resizer dev` on a spare port against the
# provisioned local stack, and stops it again, whatever happens.
#
# usage: scripts/api-fuzz.sh [MAX_EXAMPLES]     (default 30 per operation and phase)
# Run it through localstack/with-local-aws.sh (make test and make fuzz-api do).
set -euo pipefail
# shellcheck source=tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tools/lib.sh"

MAX_EXAMPLES="${1:-30}"
APITEST_VENV="$LOCAL_DIR/apitest/venv"
LOCK="$RESIZER_ROOT/tools/apitest.lock"

inputs="$(hash_files "$LOCK") $UV_VERSION"
if ! stamp_ok apitest-venv "$inputs" || [[ ! -x "$APITEST_VENV/bin/schemathesis" ]]; then
    ensure_uv
    log "installing schemathesis and openapi-spec-validator into ${APITEST_VENV#"$RESIZER_ROOT"/}"
    make_venv "$APITEST_VENV"
    "$UV_BIN" pip sync --quiet --python "$APITEST_VENV/bin/python" --require-hashes "$LOCK"
    stamp_write apitest-venv "$inputs"
fi

"$APITEST_VENV/bin/openapi-spec-validator" "$RESIZER_ROOT/openapi.yaml"

export RESIZER_DEV_PORT="${RESIZER_API_FUZZ_PORT:-3099}"
export RESIZER_DEV_HOME="$LOCAL_DIR/api-fuzz"
rm -rf "$RESIZER_DEV_HOME"
trap '"$RESIZER_ROOT/scripts/gateway.sh" stop' EXIT
"$RESIZER_ROOT/scripts/gateway.sh" start >/dev/null
key="$(cat "$RESIZER_DEV_HOME/api-key")"

# Checks: all but positive_data_acceptance. That one expects every schema-valid request to succeed,
# and some valid-looking requests are refused by rules a schema cannot state (to before from,
# lossless with a lossy format, an upload_id that names nothing); those answer a documented 400.
# `wait` may hold a request up to 20 s by design, hence the response-time limit of 25 s.
log "schemathesis: $MAX_EXAMPLES examples per operation and phase"
"$APITEST_VENV/bin/schemathesis" run "$RESIZER_ROOT/openapi.yaml" \
    --url "http://127.0.0.1:$RESIZER_DEV_PORT" \
    -H "Authorization: Bearer $key" \
    --checks all --exclude-checks positive_data_acceptance \
    --max-examples "$MAX_EXAMPLES" \
    --request-timeout 30 --max-response-time 25 \
    --seed 20261125 \
    --no-color
