#!/usr/bin/env bash
# CPU and log volume per job of the deployed api and resize functions, for right-sizing them and
# for the CloudWatch Logs line of the cost (docs/capacity.md):
# a warm-up load run, then a measured one (bench/load.sh: real ~256 KB photos through the local
# gateway to the deployed functions), with the user + system CPU of each function's processes
# summed from /proc before and after (the process executor's bootstrap processes, found by
# AWS_LAMBDA_FUNCTION_NAME in their environment). Lambda gives a function memory/1,769 of a vCPU,
# so a function's CPU-bound time per job at M MB is about this CPU × 1,769 / M. Log volume: the
# bytes of every event the measured run left in each function's log group (CloudWatch Logs bills
# ingestion per GB: the message plus 26 bytes an event); LocalStack's platform lines (START,
# END, REPORT) are text where AWS writes them as JSON under LogFormat JSON, a little longer.
#
# Measure what AWS runs: deploy the release build (RESIZER_BIN_DIR=target/release, after
# `cargo build --release -p resizer-api -p resizer-resize -p resizer-aggregate -p resizer-sweep`).
# The functions talk plain HTTP to LocalStack here, so TLS is not in the number (AES-GCM at
# ~1 GB/s adds ~0.3 ms per 256 KB sent). Not run in CI.
#
# usage: RESIZER_BIN_DIR=target/release localstack/with-local-aws.sh bench/function-cpu.sh
# env:   LOAD_JOBS (200 measured, after 40 warm-up), LOAD_RATE (2), LOAD_WIDTH (400), LOAD_CORPUS
#        (a folder of JPEGs, default the ~256 KB photos; e.g. one holding only the size set's 4mp.jpg)
set -euo pipefail
# shellcheck source=tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tools/lib.sh"
cd "$RESIZER_ROOT"

JOBS="${LOAD_JOBS:-200}"
outputs="$LOCAL_DIR/stack-outputs.json"
[[ -f "$outputs" ]] || die "no $outputs: run this through localstack/with-local-aws.sh"
names="$(python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); print(o["ApiFunctionName"], o["ResizeFunctionName"])' "$outputs")"

# Prints "<function> <pid> <cpu ticks>" for every running process of the given functions.
snapshot() {
    python3 - "$@" <<'EOF'
import os, sys
wanted = set(sys.argv[1:])
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        continue
    name = next((e[25:].decode() for e in env if e.startswith(b"AWS_LAMBDA_FUNCTION_NAME=")), None)
    if name in wanted:
        fields = stat[stat.rindex(")") + 2:].split()
        print(name, pid, int(fields[11]) + int(fields[12]))  # utime + stime
EOF
}

# shellcheck disable=SC2086 # two names
{
    log "warm-up: 40 jobs"
    LOAD_JOBS=40 bench/load.sh >/dev/null
    before="$(snapshot $names)"
    started_ms="$(($(date +%s%3N) + 1))"
    log "measured: $JOBS jobs"
    LOAD_JOBS="$JOBS" bench/load.sh >/dev/null
    after="$(snapshot $names)"
    sleep 5 # the last invocations' logs
}
logs_table="$(PYTHONPATH="$RESIZER_ROOT/localstack" "$LS_VENV/bin/python" - "$outputs" "$started_ms" "$JOBS" \
    "$LOCAL_AWS_ENDPOINT" "${AWS_REGION:-$LOCAL_REGION}" <<'EOF'
import json, sys
import logs as local_logs
outputs, start_ms, jobs = json.load(open(sys.argv[1])), int(sys.argv[2]), int(sys.argv[3])
cw, awslambda = local_logs.clients(sys.argv[4], sys.argv[5])
groups = local_logs.log_groups(cw, awslambda, outputs)
print("| function | log events per job | log bytes per job (+26 B an event) |")
print("|---|---|---|")
for tag in ("api", "resize"):
    n = size = 0
    for e in local_logs.events(cw, groups[tag], start_ms):
        n += 1
        size += len(e["message"].encode()) + 26
    print(f"| {tag} | {n / jobs:.1f} | {size / jobs:.0f} B |")
EOF
)"
python3 - "$JOBS" "$(getconf CLK_TCK)" <<EOF
import sys
jobs, hz = int(sys.argv[1]), int(sys.argv[2])
def parse(text):
    out = {}
    for line in text.splitlines():
        name, pid, ticks = line.split()
        out[(name, pid)] = int(ticks)
    return out
before, after = parse("""$before"""), parse("""$after""")
print("| function | processes (new) | CPU per job |")
print("|---|---|---|")
for name in "$names".split():
    keys = [k for k in after if k[0] == name]
    new = [k for k in keys if k not in before]
    ticks = sum(after[k] - before.get(k, 0) for k in keys)
    short = name.split("-")[-2] if "-" in name else name
    print(f"| {short} | {len(keys)} ({len(new)}) | {ticks / hz / jobs * 1000:.2f} ms |")
print()
print(f"{jobs} jobs; CPU from /proc at {hz} Hz (processes that ended meanwhile are not counted)")
EOF
echo
printf '%s\n' "$logs_table"
