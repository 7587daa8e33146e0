#!/usr/bin/env bash
# Stop the LocalStack that localstack/up.sh started from this checkout, by the PID in its PID file:
# SIGTERM, wait, then SIGKILL of its own process group (which up.sh created) if anything is left;
# then the fault proxy up.sh started, by its PID file.
# A LocalStack that this checkout did not start is never touched.
#
# env: RESIZER_LOCALSTACK_STOP_TIMEOUT  seconds to wait after SIGTERM (default 30)
set -euo pipefail
# shellcheck source=tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tools/lib.sh"

STOP_TIMEOUT="${RESIZER_LOCALSTACK_STOP_TIMEOUT:-30}"

# group_alive PGID: true while any process of the group exists.
group_alive() { kill -0 -- "-$1" 2>/dev/null; }

# start_time PID: the process's start time in clock ticks (with the PID, identifies it despite reuse).
start_time() { awk '{ print $22 }' "/proc/$1/stat" 2>/dev/null; }

# descendants PID: "pid:start_time" of every descendant. LocalStack starts the DynamoDB Local JVM in
# a process group of its own, so the group alone does not cover it.
descendants() {
    local child
    for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
        printf '%s:%s\n' "$child" "$(start_time "$child")"
        descendants "$child"
    done
}

# stop_fault_proxy: the fault proxy up.sh started, by its PID (after LocalStack: it is its upstream).
stop_fault_proxy() {
    local fp
    if fp="$(fp_our_pid)"; then
        log "stopping the fault proxy (pid $fp)"
        kill -TERM "$fp" 2>/dev/null || true
        local t=$SECONDS
        while kill -0 "$fp" 2>/dev/null && ((SECONDS - t < 5)); do
            sleep 0.1
        done
        kill -KILL "$fp" 2>/dev/null || true
    fi
    rm -f "$FAULT_PROXY_PIDFILE"
}
trap stop_fault_proxy EXIT

lock_local_aws
if ! pid="$(ls_our_pid)"; then
    if [[ -f "$LS_PIDFILE" ]]; then
        stale="$(cat "$LS_PIDFILE" 2>/dev/null || true)"
        rm -f "$LS_PIDFILE"
        # up.sh made the LocalStack process a session and group leader (PGID == PID). If it died and
        # left its JVM behind, that group still exists and is still ours.
        if [[ "$stale" =~ ^[0-9]+$ ]] && group_alive "$stale"; then
            warn "LocalStack (pid $stale) is gone but its process group is not; killing that group"
            kill -KILL -- "-$stale" 2>/dev/null || true
        fi
    fi
    log "no LocalStack started from this checkout is running"
    if ls_probe 2>/dev/null; then
        log "(a LocalStack not started from this checkout answers at $LOCAL_AWS_ENDPOINT; left alone)"
    fi
    exit 0
fi

pgid="$(ps -o pgid= -p "$pid" | tr -d ' ')"
children="$(descendants "$pid")"
log "stopping LocalStack (pid $pid)"
kill -TERM "$pid" 2>/dev/null || true
start=$SECONDS
while kill -0 "$pid" 2>/dev/null && ((SECONDS - start < STOP_TIMEOUT)); do
    sleep 0.5
done
# leftovers: the recorded descendants still alive (same PID and start time), and our group's members.
leftovers() {
    local entry child
    for entry in $children; do
        child="${entry%%:*}"
        if kill -0 "$child" 2>/dev/null && [[ "$(start_time "$child")" == "${entry#*:}" ]]; then
            printf '%s\n' "$child"
        fi
    done
    if [[ "$pgid" == "$pid" ]] && group_alive "$pgid"; then
        printf -- '-%s\n' "$pgid"
    fi
}
# Give its children (the DynamoDB Local JVM) a moment to follow.
while [[ -n "$(leftovers)" ]] && ((SECONDS - start < STOP_TIMEOUT + 10)); do
    sleep 0.5
done

if kill -0 "$pid" 2>/dev/null; then
    warn "LocalStack did not stop within ${STOP_TIMEOUT}s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
fi
for target in $(leftovers); do
    warn "killing ${target/#-/process group } left behind by LocalStack"
    kill -KILL -- "$target" 2>/dev/null || true
done
rm -f "$LS_PIDFILE"
log "stopped in $((SECONDS - start))s"
