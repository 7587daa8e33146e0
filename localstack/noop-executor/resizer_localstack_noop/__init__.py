"""A LocalStack Lambda runtime executor that never runs function code.

LocalStack runs Lambda code in Docker, which these machines do not have. With the default executor a
created function goes to ``State: Failed`` (LocalStack first tries to download a runtime), and a
CloudFormation stack containing a function then fails. With this executor (``LAMBDA_RUNTIME_EXECUTOR=noop``)
functions, event source mappings and permissions are created and reach ``Active``, and Invoke fails fast.
The project runs its handlers itself (``resizer dev``), driven from the real queue.
"""

from __future__ import annotations

from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin
from localstack.services.lambda_.invocation.runtime_executor import (
    LambdaRuntimeException,
    RuntimeExecutor,
)

_MESSAGE = (
    "function code does not run in this host-mode LocalStack (no Docker); "
    "the project's local gateway runs the handlers instead"
)


class NoopRuntimeExecutor(RuntimeExecutor):
    def start(self, env_vars: dict[str, str]) -> None:
        raise LambdaRuntimeException(_MESSAGE)

    def stop(self) -> None:
        pass

    def get_address(self) -> str:
        return "127.0.0.1"

    def get_endpoint_from_executor(self) -> str:
        return "127.0.0.1"

    def get_runtime_endpoint(self) -> str:
        return "http://127.0.0.1:0/_localstack_lambda/noop"

    def invoke(self, payload: dict[str, str]):
        raise LambdaRuntimeException(_MESSAGE)

    def get_logs(self) -> str:
        return ""

    @classmethod
    def prepare_version(cls, function_version) -> None:
        pass

    @classmethod
    def cleanup_version(cls, function_version) -> None:
        pass

    @classmethod
    def validate_environment(cls) -> bool:
        return True


class NoopRuntimeExecutorPlugin(RuntimeExecutorPlugin):
    name = "noop"

    def load(self, *args, **kwargs):
        return NoopRuntimeExecutor
