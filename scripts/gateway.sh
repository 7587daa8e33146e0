#!/usr/bin/env bash
# The local gateway (`resizer dev`, a thin forwarder to the api function's URL in the local stack):
# start it in the background against the provisioned local stack, stop it by its PID, report it,
# or follow its log.
#
# usage: scripts/gateway.sh start|stop|status|logs
# env:   RESIZER_DEV_PORT     port on 127.0.0.1 (default 3000)
#        RESIZER_DEV_HOME     its state folder: PID file, log, demo key (default .local/dev)
#        RESIZER_DEV_NO_BUILD=1  use the binary already built (make build)
set -euo pipefail
# shellcheck source=tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tools/lib.sh"

GW_HOME="${RESIZER_DEV_HOME:-$LOCAL_DIR/dev}"
GW_PIDFILE="$GW_HOME/gateway.pid"
GW_LOG="$GW_HOME/gateway.log"
PORT="${RESIZER_DEV_PORT:-3000}"
BIN="$(function_bin_dir)/resizer"

# gw_pid: the PID of the gateway this checkout started, if it still runs (not a reused PID).
gw_pid() {
    [[ -f "$GW_PIDFILE" ]] || return 1
    local pid cmdline
    pid="$(cat "$GW_PIDFILE" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    [[ "$cmdline" == *"/resizer dev "* ]] || return 1
    printf '%s\n' "$pid"
}

healthy() { curl -fsS -m 2 "http://127.0.0.1:$PORT/v1/health" >/dev/null 2>&1; }

start() {
    if pid="$(gw_pid)"; then
        log "the local gateway is already running (pid $pid) on http://127.0.0.1:$PORT"
        [[ -f "$GW_HOME/quickstart.txt" ]] && cat "$GW_HOME/quickstart.txt"
        return 0
    fi
    [[ -f "$LOCAL_DIR/stack.env" ]] || die "no .local/stack.env: run \`make dev\` (it provisions the local stack first)"
    if healthy; then
        die "something else already answers on 127.0.0.1:$PORT; set RESIZER_DEV_PORT to another port"
    fi
    if [[ "${RESIZER_DEV_NO_BUILD:-0}" == 1 && -x "$BIN" ]]; then
        log "using the resizer binary already built at ${BIN#"$RESIZER_ROOT"/}"
    else
        log "building (cargo test --workspace --no-run, as make build does)"
        (cd "$RESIZER_ROOT" && cargo test --quiet --workspace --no-run)
    fi
    mkdir -p "$GW_HOME" "$LOCAL_DIR/bin"
    [[ "$GW_HOME" == "$LOCAL_DIR/dev" ]] && ln -sf "$BIN" "$LOCAL_DIR/bin/resizer"
    set -a
    # shellcheck source=/dev/null
    source "$LOCAL_DIR/stack.env"
    set +a
    log "starting resizer dev on http://127.0.0.1:$PORT (log: ${GW_LOG#"$RESIZER_ROOT"/})"
    (
        cd "$RESIZER_ROOT"
        exec setsid "$BIN" dev --listen "127.0.0.1:$PORT" --state-dir "$GW_HOME" \
            </dev/null >>"$GW_LOG" 2>&1
    ) &
    echo $! >"$GW_PIDFILE"
    local waited=0
    until healthy; do
        if ! gw_pid >/dev/null; then
            tail -n 30 "$GW_LOG" >&2 || true
            die "resizer dev exited during start-up (log above)"
        fi
        ((waited++ < 120)) || {
            tail -n 30 "$GW_LOG" >&2 || true
            die "resizer dev did not answer within 60 s"
        }
        sleep 0.5
    done
    log "local gateway ready (pid $(cat "$GW_PIDFILE"))"
    # The quickstart is written once the demo key exists, just before serving.
    for _ in $(seq 20); do [[ -f "$GW_HOME/quickstart.txt" ]] && break; sleep 0.25; done
    [[ -f "$GW_HOME/quickstart.txt" ]] && cat "$GW_HOME/quickstart.txt"
}

stop() {
    local pid
    if ! pid="$(gw_pid)"; then
        rm -f "$GW_PIDFILE"
        log "no local gateway started from this checkout is running"
        return 0
    fi
    log "stopping the local gateway (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local start=$SECONDS
    while kill -0 "$pid" 2>/dev/null && ((SECONDS - start < 30)); do
        sleep 0.25
    done
    if kill -0 "$pid" 2>/dev/null; then
        warn "the gateway did not stop within 30 s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$GW_PIDFILE"
}

status() {
    if pid="$(gw_pid)"; then
        if healthy; then
            log "local gateway: running (pid $pid) on http://127.0.0.1:$PORT"
        else
            log "local gateway: running (pid $pid) but not answering on port $PORT"
        fi
    else
        log "local gateway: not running"
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    logs) exec tail -n 50 -F "$GW_LOG" ;;
    *) die "usage: $0 start|stop|status|logs" ;;
esac
