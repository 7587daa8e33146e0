#!/usr/bin/env bash
# Deploy template.yaml into the running local AWS as the stack "resizer-local" (us-east-1, test/test),
# with the Lambda triggers disabled, and write .local/stack.env and .local/stack-outputs.json.
# A redeploy of an unchanged template with unchanged parameters is a no-op. See provision.py.
set -euo pipefail
# shellcheck source=tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tools/lib.sh"

lock_local_aws
[[ -x "$LS_VENV/bin/python" ]] || die "the local AWS is not installed (run: make setup)"
ls_probe || die "no local AWS answers at $LOCAL_AWS_ENDPOINT (run: make up)"

"$LS_VENV/bin/python" "$RESIZER_ROOT/localstack/provision.py" \
    --endpoint "$LOCAL_AWS_ENDPOINT" \
    --region "$LOCAL_REGION" \
    --stack "$LOCAL_STACK_NAME" \
    --template "$RESIZER_ROOT/template.yaml" \
    --out-dir "$LOCAL_DIR" \
    --parameter Stage=local \
    --parameter EnableTriggers=false
