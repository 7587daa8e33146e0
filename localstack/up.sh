#!/usr/bin/env bash
# Start the local AWS (LocalStack 4.9.2 in host mode) on 127.0.0.1:4566 and wait until it is ready.
#
# Idempotent: when the LocalStack this checkout started is already running (PID file + health
# endpoint), it only waits for it to be ready. When some other LocalStack already answers on the port
# (e.g. `docker compose -f localstack/docker-compose.yml up`), it uses that one and leaves it alone.
#
# env: RESIZER_LOCALSTACK_TIMEOUT  seconds to wait for ready (default 180)
#      RESIZER_LOCAL_AWS_PORT      port (default 4566)
#      RESIZER_LOCALSTACK_DEBUG=1  LocalStack's debug logging (stack traces in its log)
set -euo pipefail
# shellcheck source=tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tools/lib.sh"

TIMEOUT="${RESIZER_LOCALSTACK_TIMEOUT:-180}"

ls_ready() {
    "$LS_VENV/bin/python" "$RESIZER_ROOT/localstack/health.py" ready "$LOCAL_AWS_ENDPOINT" "$LS_SERVICES" 2>/dev/null
}

log_tail() {
    if [[ -f "$LS_LOG" ]]; then
        printf -- '--- last lines of %s ---\n' "${LS_LOG#"$RESIZER_ROOT"/}" >&2
        tail -n 40 "$LS_LOG" >&2
        printf -- '---\n' >&2
    fi
}

# wait_ready PID: wait until LocalStack (started as PID, or foreign when empty) is ready.
wait_ready() {
    local pid="$1" start=$SECONDS
    while ((SECONDS - start < TIMEOUT)); do
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            log_tail
            rm -f "$LS_PIDFILE"
            die "LocalStack (pid $pid) exited during startup; see ${LS_LOG#"$RESIZER_ROOT"/}"
        fi
        if ls_ready; then
            return 0
        fi
        sleep 1
    done
    log_tail
    if [[ -n "$pid" ]]; then
        warn "LocalStack (pid $pid) not ready after ${TIMEOUT}s; stopping it"
        exec 9>&- # release the lock for down.sh
        "$RESIZER_ROOT/localstack/down.sh" >&2 || true
    fi
    die "the local AWS at $LOCAL_AWS_ENDPOINT was not ready within ${TIMEOUT}s"
}

"$RESIZER_ROOT/localstack/install.sh"
lock_local_aws

if pid="$(ls_our_pid)"; then
    wait_ready "$pid"
    log "LocalStack already running (pid $pid) at $LOCAL_AWS_ENDPOINT"
    exit 0
fi
rm -f "$LS_PIDFILE"

if ls_probe; then
    log "a LocalStack not started from this checkout answers at $LOCAL_AWS_ENDPOINT: using it (down will not stop it)"
    wait_ready ""
    exit 0
fi

# Something else on the port would make LocalStack fail with an obscure bind error.
if (exec 3<>"/dev/tcp/$LOCAL_AWS_HOST/$LOCAL_AWS_PORT") 2>/dev/null; then
    die "port $LOCAL_AWS_PORT on $LOCAL_AWS_HOST is in use by something that is not LocalStack (set RESIZER_LOCAL_AWS_PORT to move ours)"
fi

mkdir -p "$LS_HOME"
# Fresh runtime state on every start (PERSISTENCE=0); var/lib (the pre-placed DynamoDB Local) stays.
rm -rf "$LS_STATE/tmp" "$LS_STATE/var/lib/localstack/tmp"
# Its temporary files, including every function version's unzipped code (the process executor runs it
# from there), go to $LS_STATE/tmp rather than the shared /tmp, and are cleared here on every start.
mkdir -p "$LS_STATE/tmp"
[[ -f "$LS_LOG" ]] && mv -f "$LS_LOG" "$LS_LOG.1"

log "starting LocalStack 4.9.2 (host mode) at $LOCAL_AWS_ENDPOINT, log: ${LS_LOG#"$RESIZER_ROOT"/}"
start=$SECONDS
(
    exec 9>&- # LocalStack must not inherit (and so hold) the lock
    cd "$LS_HOME"
    # Settings: see README.md ("Local AWS"). /.dockerenv exists on these machines, hence OVERRIDE_IN_DOCKER=0.
    exec env \
        OVERRIDE_IN_DOCKER=0 \
        FILESYSTEM_ROOT="$LS_STATE" \
        GATEWAY_LISTEN="$LOCAL_AWS_HOST:$LOCAL_AWS_PORT" \
        GATEWAY_SERVER=hypercorn \
        LOCALSTACK_HOST="$LOCAL_AWS_HOST:$LOCAL_AWS_PORT" \
        SQS_ENDPOINT_STRATEGY=path \
        SKIP_SSL_CERT_DOWNLOAD=1 \
        DNS_ADDRESS=0 \
        DISABLE_EVENTS=1 \
        PERSISTENCE=0 \
        EAGER_SERVICE_LOADING=1 \
        SERVICES="$LS_SERVICES" \
        LAMBDA_RUNTIME_EXECUTOR=process \
        LAMBDA_EVENT_SOURCE_MAPPING_MAX_BACKOFF_ON_EMPTY_POLL_SEC=1 \
        LAMBDA_EVENT_SOURCE_MAPPING_MAX_BACKOFF_ON_ERROR_SEC=5 \
        TMPDIR="$LS_STATE/tmp" \
        DYNAMODB_IN_MEMORY=1 \
        DEBUG="${RESIZER_LOCALSTACK_DEBUG:-0}" \
        "$LS_VENV/bin/python" -c 'import os, sys; os.setsid(); os.execv(sys.argv[1], sys.argv[1:])' \
        "$LS_VENV/bin/python" -m localstack.runtime.main
) </dev/null >>"$LS_LOG" 2>&1 &
pid=$!
printf '%s\n' "$pid" >"$LS_PIDFILE"

wait_ready "$pid"
log "LocalStack ready (pid $pid) in $((SECONDS - start))s"
