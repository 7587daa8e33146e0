#!/usr/bin/env bash
# The load run (`make load`; not in CI): real ~256 KB photographs submitted at a fixed rate through
# the local gateway to the deployed stack, where LocalStack runs the real function binaries (the
# api behind its function URL, resize from the SQS event source mapping). Every job is waited for
# and checked (done exactly once, result present, one raw usage item each, rollups equal). Prints a
# Markdown report and keeps it in bench/.work/load-report.md.
#
# usage: bench/load.sh      (run it through localstack/with-local-aws.sh; `make load` does, after
#                            `make build`)
# env:   LOAD_JOBS (2000), LOAD_RATE (jobs/s, 2: what this machine sustains), LOAD_WIDTH (400), LOAD_PORT (3097),
#        LOAD_CORPUS (a folder of JPEGs; default bench/.work/corpus/main)
#
# On this kind of machine LocalStack (one Python process that also carries every function
# invocation) is the bottleneck, not the service: raise LOAD_RATE to find where it tips over.
set -euo pipefail
# shellcheck source=tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tools/lib.sh"
cd "$RESIZER_ROOT"

JOBS="${LOAD_JOBS:-2000}"
RATE="${LOAD_RATE:-2}"
WIDTH="${LOAD_WIDTH:-400}"
export RESIZER_DEV_PORT="${LOAD_PORT:-3097}"
export RESIZER_DEV_HOME="$LOCAL_DIR/load"
export RESIZER_DEV_NO_BUILD=1
REPORT="$RESIZER_ROOT/bench/.work/load-report.md"

bench/corpus.sh
# The load generator is built with the functions (`make build`), beside them.
LOADGEN="$(function_bin_dir)/loadgen"
[[ -x "$LOADGEN" ]] || die "no $LOADGEN: run \`make build\` first (\`make load\` does)"

trap 'scripts/gateway.sh stop' EXIT
scripts/gateway.sh start >/dev/null
gw="$(cat "$RESIZER_DEV_HOME/gateway.pid")"
ls_pid="$(ls_our_pid || true)"
pids=(--pid "gateway=$gw")
[[ -n "$ls_pid" ]] && pids+=(--pid "localstack=$ls_pid")

log "load: $JOBS jobs at $RATE/s, width $WIDTH"
{
    echo "Load run $(date -u +%Y-%m-%dT%H:%MZ): \`LOAD_JOBS=$JOBS LOAD_RATE=$RATE make load\`, $(nproc) cores"
    echo
    "$LOADGEN" --endpoint "http://127.0.0.1:$RESIZER_DEV_PORT" \
        --corpus "${LOAD_CORPUS:-bench/.work/corpus/main}" --jobs "$JOBS" --rate "$RATE" --width "$WIDTH" "${pids[@]}"
} | tee "$REPORT"
