#!/usr/bin/env bash
# The functions' logs in the local stack's CloudWatch Logs, where LocalStack puts what each function
# process printed (through the project's process executor).
#
# usage: localstack/logs.sh follow        every line of the three functions as it arrives, tagged
#                                         [api] / [resize] / [aggregate] (Ctrl-C to stop)
#        localstack/logs.sh cold-starts   per function: cold starts seen and their Init Duration
# env:   RESIZER_REGION  the region's stack (default us-east-1)
set -euo pipefail
# shellcheck source=tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tools/lib.sh"

[[ -x "$LS_VENV/bin/python" ]] || die "the local AWS is not installed (run: make dev)"
region="${RESIZER_REGION:-$LOCAL_REGION}"
outputs="$(region_dir "$region")/stack-outputs.json"
[[ -f "$outputs" ]] || die "no $outputs: deploy the local stack first (make dev)"
ls_probe || die "no local AWS answers at $LOCAL_AWS_ENDPOINT (run: make dev)"
exec "$LS_VENV/bin/python" "$RESIZER_ROOT/localstack/logs.py" \
    --endpoint "$LOCAL_AWS_ENDPOINT" --region "$region" --outputs "$outputs" "$@"
