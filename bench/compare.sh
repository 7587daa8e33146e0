#!/usr/bin/env bash
# Side-by-side engine benchmark: Resizer vs vipsthumbnail (Debian libvips-tools) vs sharp (npm).
# Installs its pinned peers, builds the corpus from Debian's wallpaper packages (real photographs,
# checked by eye), builds the engine driver, measures, and rewrites the "Engine" section of
# docs/benchmarks.md. Not run in CI. Needs root for apt-get, or the packages already installed.
#
#   bench/compare.sh [--repeat N]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$ROOT/bench/.work
REPEAT=5
[[ "${1:-}" == "--repeat" ]] && REPEAT=$2
SHARP_VERSION=0.35.5
PY_PINS=(Pillow==13.0.0 numpy==2.4.6 scikit-image==0.26.0)
mkdir -p "$WORK"

# --- peers -------------------------------------------------------------------------------
need=()
command -v vipsthumbnail >/dev/null || need+=(libvips-tools)
command -v taskset >/dev/null || need+=(util-linux)
[[ -x /usr/bin/time ]] || need+=(time)
command -v node >/dev/null || need+=(nodejs npm)
python3 -c 'import venv' 2>/dev/null || need+=(python3-venv)
if ((${#need[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
if [[ ! -d $WORK/node/node_modules/sharp ]]; then
  mkdir -p "$WORK/node"
  (cd "$WORK/node" && npm init -y >/dev/null && npm install --no-audit --no-fund "sharp@$SHARP_VERSION" >/dev/null)
fi
if [[ ! -x $WORK/venv/bin/python ]]; then
  python3 -m venv "$WORK/venv"
  "$WORK/venv/bin/pip" install -q "${PY_PINS[@]}"
fi
VIPS_VERSION=$(vips --version)
SHARP_REPORTED=$(cd "$WORK/node" && node -e "const v=require('sharp').versions; console.log('sharp ' + v.sharp + ' (libvips ' + v.vips + ')')")

# --- corpus: 20 real photographs, ~256 KB each ---------------------------------------------
bench/corpus.sh

# --- engine driver (bench profile: release with thin LTO) --------------------------------------
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
cargo bench -p resizer-engine --bench engine --no-run 2>&1 | tail -1
ENGINE=$(cargo bench -p resizer-engine --bench engine --no-run --message-format=json 2>/dev/null \
  | "$WORK/venv/bin/python" -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "engine" and m.get("executable"):
        print(m["executable"])')

"$WORK/venv/bin/python" bench/compare.py \
  --engine "$ENGINE" \
  --sharp "$WORK/node/node_modules/sharp" \
  --sharp-bench bench/sharp_bench.js \
  --corpus "$WORK/corpus" \
  --work "$WORK/run" \
  --repeat "$REPEAT" \
  --doc docs/benchmarks.md \
  --versions "vipsthumbnail ($VIPS_VERSION, Debian libvips-tools), $SHARP_REPORTED, Pillow ${PY_PINS[0]#*==} as the SSIM reference, rustc $(rustc --version | cut -d' ' -f2)" \
  --command "bench/compare.sh --repeat $REPEAT"
