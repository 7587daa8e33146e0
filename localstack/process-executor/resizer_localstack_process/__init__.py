"""A LocalStack Lambda runtime executor that runs each function's ``bootstrap`` as a local process.

LocalStack runs Lambda code in Docker, which these machines do not have. With this executor
(``LAMBDA_RUNTIME_EXECUTOR=process``) every execution environment is a local process group started
from the function's unzipped code, served the Lambda Runtime API on a port of its own; see
``executor.py`` for what LocalStack expects and ``sandbox.py`` for one process's lifetime.
Only the standard library and LocalStack are used.
"""

from __future__ import annotations

from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin


class ProcessRuntimeExecutorPlugin(RuntimeExecutorPlugin):
    name = "process"

    def load(self, *args, **kwargs):
        from resizer_localstack_process.executor import ProcessRuntimeExecutor

        return ProcessRuntimeExecutor
