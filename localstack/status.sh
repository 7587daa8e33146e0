#!/usr/bin/env bash
# Report the local AWS: whether this checkout's LocalStack runs, its services, and the local stack.
# Exit status: 0 when a LocalStack answers on the endpoint, 1 otherwise.
set -euo pipefail
# shellcheck source=tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tools/lib.sh"

pid=""
if pid="$(ls_our_pid)"; then
    log "LocalStack started from this checkout: pid $pid, up $(ps -o etime= -p "$pid" | tr -d ' '), log ${LS_LOG#"$RESIZER_ROOT"/}"
else
    log "no LocalStack started from this checkout is running"
fi

if fp="$(fp_our_pid)"; then
    log "fault proxy: pid $fp at $FAULT_PROXY_ENDPOINT (the functions' AWS endpoint: $(cat "$LS_FUNCTION_ENDPOINT_FILE" 2>/dev/null || echo unknown)), log ${FAULT_PROXY_LOG#"$RESIZER_ROOT"/}"
elif [[ -n "$pid" ]]; then
    log "fault proxy: not running (the functions' AWS endpoint: $(cat "$LS_FUNCTION_ENDPOINT_FILE" 2>/dev/null || echo unknown))"
fi

if ! [[ -x "$LS_VENV/bin/python" ]]; then
    log "LocalStack is not installed (run: make setup)"
    exit 1
fi
if ! "$LS_VENV/bin/python" "$RESIZER_ROOT/localstack/health.py" report "$LOCAL_AWS_ENDPOINT"; then
    exit 1
fi

stack_status="$(AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test "$LS_VENV/bin/aws" \
    --endpoint-url "$LOCAL_AWS_ENDPOINT" --region "$LOCAL_REGION" cloudformation describe-stacks \
    --stack-name "$LOCAL_STACK_NAME" --query 'Stacks[0].StackStatus' --output text 2>/dev/null || true)"
if [[ -n "$stack_status" ]]; then
    log "stack $LOCAL_STACK_NAME: $stack_status (outputs: .local/stack.env, .local/stack-outputs.json)"
else
    log "stack $LOCAL_STACK_NAME: not deployed (run: make provision)"
fi
