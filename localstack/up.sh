#!/usr/bin/env bash
# Start the local AWS (LocalStack 4.9.2 in host mode) on 127.0.0.1:4566 and wait until it is ready,
# with the fault proxy (crates/faults) on the next port between its functions and itself.
#
# Idempotent: when the LocalStack this checkout started is already running (PID file + health
# endpoint), it only waits for it to be ready. When some other LocalStack already answers on the port
# (e.g. `docker compose -f localstack/docker-compose.yml up`), it uses that one and leaves it alone.
#
# env: RESIZER_LOCALSTACK_TIMEOUT  seconds to wait for ready (default 180)
#      RESIZER_LOCAL_AWS_PORT      port (default 4566)
#      RESIZER_LOCALSTACK_DEBUG=1  LocalStack's debug logging (stack traces in its log)
#      RESIZER_FAULT_PROXY=0       the functions call LocalStack directly, without the fault proxy
#      RESIZER_FAULT_PROXY_PORT    the fault proxy's port (default: RESIZER_LOCAL_AWS_PORT + 1)
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

# What the functions get as AWS_ENDPOINT_URL: the fault proxy, or LocalStack itself without it.
wanted_function_endpoint() {
    if [[ "$FAULT_PROXY_ENABLED" == 1 ]]; then
        printf '%s\n' "$FAULT_PROXY_ENDPOINT"
    else
        printf '%s\n' "$LOCAL_AWS_ENDPOINT"
    fi
}

# Start the fault proxy (crates/faults) unless it runs: before LocalStack, whose functions call it.
start_fault_proxy() {
    if fp_our_pid >/dev/null; then
        return 0
    fi
    rm -f "$FAULT_PROXY_PIDFILE"
    local bin
    bin="$(function_bin_dir)/resizer-faults"
    if [[ ! -x "$bin" ]]; then
        log "building the fault proxy (crates/faults)"
        (cd "$RESIZER_ROOT" && cargo build --quiet --locked -p resizer-faults --bin resizer-faults)
        [[ -x "$bin" ]] || die "$bin not found after building it (is RESIZER_BIN_DIR elsewhere? run: make build)"
    fi
    if (exec 3<>"/dev/tcp/$LOCAL_AWS_HOST/$FAULT_PROXY_PORT") 2>/dev/null; then
        die "port $FAULT_PROXY_PORT (the fault proxy's) is in use by something else: set RESIZER_FAULT_PROXY_PORT to move it, or RESIZER_FAULT_PROXY=0 to run without it"
    fi
    mkdir -p "$LS_HOME"
    [[ -f "$FAULT_PROXY_LOG" ]] && mv -f "$FAULT_PROXY_LOG" "$FAULT_PROXY_LOG.1"
    (
        exec 9>&-
        # A session of its own, like LocalStack's: a Ctrl-C in this terminal leaves it alone.
        exec "$LS_VENV/bin/python" -c 'import os, sys; os.setsid(); os.execv(sys.argv[1], sys.argv[1:])' \
            "$bin" --listen "$LOCAL_AWS_HOST:$FAULT_PROXY_PORT" --upstream "$LOCAL_AWS_ENDPOINT"
    ) </dev/null >>"$FAULT_PROXY_LOG" 2>&1 &
    local pid=$! start=$SECONDS
    printf '%s\n' "$pid" >"$FAULT_PROXY_PIDFILE"
    until (exec 3<>"/dev/tcp/$LOCAL_AWS_HOST/$FAULT_PROXY_PORT") 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null || ((SECONDS - start > 10)); then
            tail -n 20 "$FAULT_PROXY_LOG" >&2 || true
            die "the fault proxy did not start; see ${FAULT_PROXY_LOG#"$RESIZER_ROOT"/}"
        fi
        sleep 0.1
    done
    log "fault proxy (pid $pid) at $FAULT_PROXY_ENDPOINT, forwarding to $LOCAL_AWS_ENDPOINT"
}

"$RESIZER_ROOT/localstack/install.sh"
lock_local_aws

if pid="$(ls_our_pid)"; then
    wait_ready "$pid"
    running="$(cat "$LS_FUNCTION_ENDPOINT_FILE" 2>/dev/null || true)"
    if [[ "$running" == "$FAULT_PROXY_ENDPOINT" ]]; then
        start_fault_proxy
    fi
    if [[ -n "$running" && "$running" != "$(wanted_function_endpoint)" ]]; then
        warn "the running LocalStack gives its functions AWS_ENDPOINT_URL=$running, not $(wanted_function_endpoint); restart it (make down) to change that"
    fi
    log "LocalStack already running (pid $pid) at $LOCAL_AWS_ENDPOINT"
    exit 0
fi
rm -f "$LS_PIDFILE"

if ls_probe; then
    log "a LocalStack not started from this checkout answers at $LOCAL_AWS_ENDPOINT: using it (down will not stop it; its functions do not go through this checkout's fault proxy)"
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

function_endpoint=""
if [[ "$FAULT_PROXY_ENABLED" == 1 ]]; then
    start_fault_proxy
    function_endpoint="$FAULT_PROXY_ENDPOINT"
fi
wanted_function_endpoint >"$LS_FUNCTION_ENDPOINT_FILE"

log "starting LocalStack 4.9.2 (host mode) at $LOCAL_AWS_ENDPOINT, log: ${LS_LOG#"$RESIZER_ROOT"/}"
start=$SECONDS
(
    exec 9>&- # LocalStack must not inherit (and so hold) the lock
    cd "$LS_HOME"
    # Settings: see README.md ("Local AWS"). /.dockerenv exists on these machines, hence OVERRIDE_IN_DOCKER=0.
    # CORS as AWS does it: LocalStack neither refuses origins it does not know nor answers
    # preflights itself, so a function URL passes them to the api function and S3 applies the
    # buckets' own CORS rules (the stack's CorsAllowedOrigins).
    exec env \
        OVERRIDE_IN_DOCKER=0 \
        DISABLE_CORS_CHECKS=1 \
        DISABLE_PREFLIGHT_PROCESSING=1 \
        DISABLE_CORS_HEADERS=1 \
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
        RESIZER_FUNCTION_AWS_ENDPOINT="$function_endpoint" \
        LAMBDA_EVENT_SOURCE_MAPPING_MAX_BACKOFF_ON_EMPTY_POLL_SEC=1 \
        LAMBDA_EVENT_SOURCE_MAPPING_MAX_BACKOFF_ON_ERROR_SEC=5 \
        LAMBDA_EVENT_SOURCE_MAPPING_POLL_INTERVAL_SEC=0.1 \
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
