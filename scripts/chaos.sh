#!/usr/bin/env bash
# The chaos suite (`make chaos`): every scenario of integration-tests/tests/chaos.rs, one at a time,
# against the provisioned local stack with the fault proxy in its functions' path; then a summary.
# Each scenario's Markdown report lands in .local/chaos/<scenario>.md, all of them in
# .local/chaos/report.md (docs/reliability.md records the measured results).
#
# usage: scripts/chaos.sh [test name filter]   (run it through localstack/with-local-aws.sh)
# env:   CHAOS_SCALE   multiplies every fault and load duration (default 1: the issue's durations)
#        CHAOS_*_S     single durations, see integration-tests/tests/chaos.rs
set -euo pipefail
# shellcheck source=tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tools/lib.sh"
cd "$RESIZER_ROOT"

[[ -n "${RESIZER_FAULT_PROXY_URL:-}" ]] || die "the local AWS's functions do not go through this checkout's fault proxy (a LocalStack not started by localstack/up.sh, or RESIZER_FAULT_PROXY=0): restart it with make down"

out="$LOCAL_DIR/chaos"
rm -rf "$out"
mkdir -p "$out"
start=$SECONDS
status=0
# --workspace: the feature set of `make build`, so nothing is rebuilt for another one.
CHAOS_REQUIRED=1 cargo test --workspace --test chaos -- \
    --include-ignored --nocapture --test-threads=1 "$@" || status=$?

{
    printf '# Chaos run %s, commit %s, %s s\n\n' "$(date -u +%Y-%m-%dT%H:%MZ)" \
        "$(git rev-parse --short HEAD)" "$((SECONDS - start))"
    for f in "$out"/*.md; do
        [[ "$f" == "$out/report.md" || ! -f "$f" ]] && continue
        cat "$f"
        printf '\n'
    done
} >"$out/report.md.tmp"
mv "$out/report.md.tmp" "$out/report.md"

log "chaos suite: $((SECONDS - start)) s; reports in ${out#"$RESIZER_ROOT"/}/"
for f in "$out"/*.md; do
    [[ "$f" == "$out/report.md" ]] && continue
    printf '  %-24s %s\n' "$(basename "$f" .md)" "$(grep -oE '^\*\*(PASS|FAIL)[^*]*' "$f" | tr -d '*' | head -n1)" >&2
done
exit "$status"
