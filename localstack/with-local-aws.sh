#!/usr/bin/env bash
# Run a command against the provisioned local AWS: start it if none is running, provision the stack
# (and the same stack in each of RESIZER_EXTRA_REGIONS),
# run the command with .local/stack.env exported, and stop the local AWS afterwards only if this run
# started it. Exit status: the command's.
#
# usage: localstack/with-local-aws.sh COMMAND [ARGS...]
set -euo pipefail
# shellcheck source=tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tools/lib.sh"

(($# > 0)) || die "usage: $0 COMMAND [ARGS...]"

before="$(ls_our_pid || true)"
"$RESIZER_ROOT/localstack/up.sh"
after="$(ls_our_pid || true)"
if [[ -n "$after" && "$after" != "$before" ]]; then
    log "this run started the local AWS (pid $after); it stops it at the end"
    trap '"$RESIZER_ROOT/localstack/down.sh"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
fi

"$RESIZER_ROOT/localstack/provision.sh"
# More regions' stacks beside it (make test deploys one in us-west-2 to show regions share nothing).
for region in ${RESIZER_EXTRA_REGIONS:-}; do
    RESIZER_REGION="$region" "$RESIZER_ROOT/localstack/provision.sh"
done

set -a
# shellcheck source=/dev/null
source "$LOCAL_DIR/stack.env"
set +a
# For the chaos tests: this checkout's LocalStack (its function processes are its descendants) and
# the fault proxy its functions call (unset when LocalStack is not ours or runs without it).
RESIZER_LOCALSTACK_PID="$(ls_our_pid || true)"
RESIZER_FAULT_PROXY_URL=""
if fp_our_pid >/dev/null && [[ "$(cat "$LS_FUNCTION_ENDPOINT_FILE" 2>/dev/null || true)" == "$FAULT_PROXY_ENDPOINT" ]]; then
    RESIZER_FAULT_PROXY_URL="$FAULT_PROXY_ENDPOINT"
fi
export RESIZER_LOCALSTACK_PID RESIZER_FAULT_PROXY_URL

status=0
"$@" || status=$?
exit "$status"
