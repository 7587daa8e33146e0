#!/usr/bin/env bash
# Tests of the process executor plugin (localstack/process-executor), offline, in about a minute:
# the executor class on its own, then a LocalStack of the tests' own (free loopback port, temporary
# state, process executor) with functions whose bootstrap is a tiny Runtime API client.
#
# usage: localstack/test-executor.sh [unittest arguments, e.g. test_localstack.ProcessExecutorTest.test_logs_reach_cloudwatch_logs]
# env:   RESIZER_EXECUTOR_TEST_PORT  port of the tests' LocalStack (default: a free one)
#        RESIZER_EXECUTOR_TEST_KEEP=1  keep its state directory (and log) for a look afterwards
#        RESIZER_LOCALSTACK_DEBUG=1  LocalStack's debug logging
set -euo pipefail
# shellcheck source=tools/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tools/lib.sh"

"$RESIZER_ROOT/localstack/install.sh"
cd "$RESIZER_ROOT/localstack/process-executor/tests"
if (($# == 0)); then
    set -- test_executor test_localstack
fi
export PYTHONDONTWRITEBYTECODE=1
exec "$LS_VENV/bin/python" -m unittest -v "$@"
