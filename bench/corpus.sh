#!/usr/bin/env bash
# Builds the benchmark corpus (once) in bench/.work/corpus: 20 real photographs from Debian's
# wallpaper packages, each scaled to 1600-2000 px wide and saved as a ~256 KB JPEG (corpus/main),
# plus a size-growth set (corpus/sizes). Used by bench/compare.sh and bench/load.sh.
# Needs root for apt-get, or the packages already installed.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=$PWD/bench/.work
PILLOW=Pillow==13.0.0
mkdir -p "$WORK"
[[ -f $WORK/corpus/sizes/12mp.jpg ]] && exit 0

need=()
[[ -d /usr/share/wallpapers/Path ]] || need+=(plasma-workspace-wallpapers)
[[ -d /usr/share/backgrounds/mate/nature ]] || need+=(mate-backgrounds)
python3 -c 'import venv' 2>/dev/null || need+=(python3-venv)
if ((${#need[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
if [[ ! -x $WORK/corpus-venv/bin/python ]]; then
  python3 -m venv "$WORK/corpus-venv"
  "$WORK/corpus-venv/bin/pip" install -q "$PILLOW"
fi

# The other wallpapers in these packages are illustrations, not photographs.
P=/usr/share/wallpapers
M=/usr/share/backgrounds/mate/nature
SRCS=()
for n in BytheWater ColdRipple ColorfulCups DarkestHour EveningGlow FallenLeaf Grey Kite OneStandsOut Path summer_1am; do
  SRCS+=("$P/$n/contents/images/2560x1600.jpg")
done
for n in Aqua Blinds Dune FreshFlower Garden LadyBird RainDrops Storm TwoWings; do
  SRCS+=("$M/$n.jpg")
done
"$WORK/corpus-venv/bin/python" bench/corpus.py "$WORK/corpus" "${SRCS[@]}"
