#!/usr/bin/env bash
# Right-sizing the resize function: what one conversion costs at each Lambda memory size.
#
# Lambda gives a function CPU in proportion to its memory: 1,769 MB is one vCPU, less is a share of
# one (enforced like a CFS quota), more adds vCPUs a single-threaded conversion cannot use. This
# emulates the share on this host with a cgroup-v1 `cpu` controller (cpu.cfs_quota_us =
# period × memory / 1,769; no quota at and above 1,769 MB), pinned to one core, and runs the
# engine driver (the same engine the function links) over the benchmark corpus, one conversion at
# a time. It prints, per memory size, the wall time per conversion and the compute cost per million
# conversions (x86_64 $0.0000166667 per GB-s; arm64 is 20 % less), conversion only: the
# invocation's S3 and DynamoDB round trips add memory × their time at every size.
#
# Needs root (the cgroup), a quiet machine (other load on the pinned core counts as throttling),
# the corpus of bench/corpus.sh and the engine driver (built here with the bench profile when
# missing). Not run in CI.
#
#   bench/rightsize.sh [--sizes "256 512 1024 1769 2048"] [--width 400] [--format webp] [--repeat 3]
#                      [--corpus main|sizes] [--only '4mp.jpg']
#   (--corpus sizes --only 4mp.jpg: the 795 KB, 4 MP JPEG of the size-growth set, a "1 MB image")
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SIZES="256 512 768 1024 1280 1536 1769 2048"
WIDTH=400
FORMAT=webp
REPEAT=3
CORPUS_NAME=main
ONLY='*'
PERIOD_US=100000
CORE=${RIGHTSIZE_CORE:-1}
while (($#)); do
  case $1 in
    --sizes) SIZES=$2; shift 2 ;;
    --width) WIDTH=$2; shift 2 ;;
    --format) FORMAT=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --corpus) CORPUS_NAME=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

CG_ROOT=/sys/fs/cgroup/cpu
[[ -w $CG_ROOT ]] || { echo "needs a writable cgroup-v1 cpu controller at $CG_ROOT (root)" >&2; exit 1; }
CORPUS=$ROOT/bench/.work/corpus/$CORPUS_NAME
[[ -d $CORPUS ]] || bench/corpus.sh
mapfile -t FILES < <(find "$CORPUS" -maxdepth 1 -type f -name "$ONLY" | sort)
((${#FILES[@]})) || { echo "no corpus in $CORPUS" >&2; exit 1; }

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
ENGINE=$(cargo bench -p resizer-engine --bench engine --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "engine" and m.get("executable"):
        print(m["executable"])')
[[ -x $ENGINE ]] || { echo "could not build the engine driver" >&2; exit 1; }

CG=$CG_ROOT/resizer-rightsize-$$
mkdir "$CG"
cleanup() { rmdir "$CG" 2>/dev/null || true; }
trap cleanup EXIT
echo "$PERIOD_US" > "$CG/cpu.cfs_period_us"

n=$(( ${#FILES[@]} * REPEAT ))
echo "| memory | CPU share | wall per conversion | compute per million conversions (x86_64) |"
echo "|---|---|---|---|"
for mb in $SIZES; do
  if (( mb >= 1769 )); then
    quota=-1; share="1 vCPU"
  else
    quota=$(( PERIOD_US * mb / 1769 )); share=$(python3 -c "print(f'{$mb/1769:.2f}')")
  fi
  echo "$quota" > "$CG/cpu.cfs_quota_us"
  # Warm the page cache and the binary once, outside the measurement.
  "$ENGINE" run --width "$WIDTH" --format "$FORMAT" "${FILES[0]}" >/dev/null
  start=$(date +%s.%N)
  sh -c "echo \$\$ > '$CG/tasks'; exec taskset -c '$CORE' '$ENGINE' run --width '$WIDTH' --format '$FORMAT' --repeat '$REPEAT' $(printf "'%s' " "${FILES[@]}")" >/dev/null
  end=$(date +%s.%N)
  python3 - "$mb" "$share" "$start" "$end" "$n" <<'EOF'
import sys
mb, share, start, end, n = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
wall = (end - start) / n
cost = mb / 1024 * wall * 0.0000166667 * 1e6
print(f"| {mb} MB | {share} | {wall * 1000:.1f} ms | ${cost:.2f} |")
EOF
done
echo
echo "${#FILES[@]} photos ($CORPUS_NAME/$ONLY) × $REPEAT, width $WIDTH, $FORMAT; CFS period ${PERIOD_US} µs, pinned to core $CORE; $(date -u +%FT%TZ), $(git rev-parse --short HEAD)"
