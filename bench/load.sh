#!/usr/bin/env bash
# The load run (`make load`; not in CI): real ~256 KB photographs submitted at a fixed rate through a
# release-built `resizer dev` on the provisioned local AWS, every job waited for and checked (done
# exactly once, result present, one raw usage item each, rollups equal). Prints a Markdown report
# and keeps it in bench/.work/load-report.md.
#
# usage: bench/load.sh      (run it through localstack/with-local-aws.sh; `make load` does)
# env:   LOAD_JOBS (2000), LOAD_RATE (jobs/s, 3), LOAD_WIDTH (400), LOAD_WORKERS (gateway's resize
#        workers, 4), LOAD_PORT (3097)
#
# On this kind of machine LocalStack, one Python process, is the bottleneck (about 0.24 CPU-s per
# job), not the service: the default rate is one it sustains. Raise LOAD_RATE to find its limit.
set -euo pipefail
# shellcheck source=tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tools/lib.sh"
cd "$RESIZER_ROOT"

JOBS="${LOAD_JOBS:-2000}"
RATE="${LOAD_RATE:-3}"
WIDTH="${LOAD_WIDTH:-400}"
export RESIZER_DEV_WORKERS="${LOAD_WORKERS:-4}"
export RESIZER_DEV_PORT="${LOAD_PORT:-3097}"
export RESIZER_DEV_HOME="$LOCAL_DIR/load"
export RESIZER_DEV_PROFILE=local
# The aggregator runs inside the load generator at the end, not on a timer during the run.
export RESIZER_DEV_AGGREGATE_EVERY=86400
REPORT="$RESIZER_ROOT/bench/.work/load-report.md"

bench/corpus.sh
log "building the load generator (cargo profile local)"
cargo build --quiet --profile local -p resizer-integration-tests --bin loadgen
TARGET_DIR="${CARGO_TARGET_DIR:-$RESIZER_ROOT/target}"

trap 'scripts/gateway.sh stop' EXIT
scripts/gateway.sh start >/dev/null
gw="$(cat "$RESIZER_DEV_HOME/gateway.pid")"
ls_pid="$(ls_our_pid || true)"
pids=(--pid "gateway=$gw")
[[ -n "$ls_pid" ]] && pids+=(--pid "localstack=$ls_pid")

log "load: $JOBS jobs at $RATE/s, width $WIDTH, $RESIZER_DEV_WORKERS resize workers"
{
    echo "Load run $(date -u +%Y-%m-%dT%H:%MZ): \`LOAD_JOBS=$JOBS LOAD_RATE=$RATE LOAD_WORKERS=$RESIZER_DEV_WORKERS make load\`, $(nproc) cores"
    echo
    "$TARGET_DIR/local/loadgen" --endpoint "http://127.0.0.1:$RESIZER_DEV_PORT" \
        --corpus bench/.work/corpus/main --jobs "$JOBS" --rate "$RATE" --width "$WIDTH" "${pids[@]}"
} | tee "$REPORT"
