#!/usr/bin/env bash
# Unit tests of localstack/provision.py (fake clients, no LocalStack; a second). `make test` runs them.
set -euo pipefail
# shellcheck source=tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tools/lib.sh"

"$RESIZER_ROOT/localstack/install.sh"
export PYTHONDONTWRITEBYTECODE=1
exec "$LS_VENV/bin/python" -m unittest discover -v -s "$RESIZER_ROOT/localstack/tests" -p 'test_*.py'
