"""The runtime executor: one instance is one Lambda execution environment of LocalStack 4.9.2.

What LocalStack does around it (``localstack/services/lambda_/invocation/``):

- ``prepare_version`` runs once per function version (before it becomes ``Active``);
  ``cleanup_version`` when the version goes away. The unzipped code is shared by every environment
  of the version; LocalStack itself deletes it when no version uses it any more.
- ``start(env_vars)`` starts an environment for an invocation that found none idle. LocalStack's
  startup timer (``LAMBDA_RUNTIME_ENVIRONMENT_TIMEOUT``, 20 s) calls ``stop()`` from another thread
  if ``start`` takes longer. If ``start`` raises, the invoke fails with a ServiceException carrying
  the message.
- ``invoke(payload)`` is called for one invocation at a time. A returned result, error or not, puts
  the environment back into the pool for the next invocation; an exception makes LocalStack stop the
  environment and fail the invoke with a ServiceException. Nobody but the executor enforces the
  function's timeout. So a timeout or a crash returns an error result (as AWS answers) and the next
  invocation of this environment starts a fresh process first (as AWS resets a sandbox), whose init
  it reports.
- ``stop()`` ends the environment: after ``LAMBDA_KEEPALIVE_MS`` idle (default 10 minutes), on an
  update or delete of the function, and when LocalStack shuts down.
- The result's ``logs`` go to CloudWatch Logs (``/aws/lambda/<function>``, one stream per
  environment), one event per non-empty line.

The process runs natively, so the function's architecture must be the host's, unless an emulator
for its architecture is named in ``RESIZER_EMULATOR_<ARCH>`` (``RESIZER_EMULATOR_ARM64``, e.g.
``qemu-aarch64-static -L /usr/aarch64-linux-gnu``: a command that runs a foreign binary given as
its last argument; ``make smoke-arm64`` sets it); ``start`` refuses another architecture (the
function still deploys, so a template with arm64 functions can be provisioned).
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import os
import platform
import shlex
import threading
import time
from pathlib import Path

from localstack import config
from localstack.services.lambda_.invocation.lambda_models import FunctionVersion, InvocationResult
from localstack.services.lambda_.invocation.runtime_executor import (
    LambdaRuntimeException,
    RuntimeExecutor,
)

from resizer_localstack_process.sandbox import Event, InitFailure, Outcome, Sandbox, exit_reason

LOG = logging.getLogger(__name__)

# The runtime sees only the function's environment as LocalStack builds it, plus these defaults.
DEFAULT_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
# Never passed: HOME (so that ~/.aws stays out of the SDKs' way) and LocalStack's Docker-init paths.
DROPPED_ENV = {"HOME", "LAMBDA_RUNTIME_DIR", "LOCALSTACK_RUNTIME_ENDPOINT"}
# Where the functions' AWS calls go. LocalStack passes its own gateway
# (AWS_ENDPOINT_URL=http://127.0.0.1:<gateway port>); when LocalStack runs with this variable set
# (localstack/up.sh sets it to the fault proxy, crates/faults), the functions get its value instead.
FUNCTION_AWS_ENDPOINT_ENV = "RESIZER_FUNCTION_AWS_ENDPOINT"
# SIGTERM to SIGKILL on stop().
STOP_GRACE_S = 1.0
# How much of a failed init's output goes into the error message.
INIT_OUTPUT_IN_ERROR = 4000

# RESIZER_EMULATOR_ARM64, RESIZER_EMULATOR_X86_64: how to run a function of another architecture.
EMULATOR_ENV = "RESIZER_EMULATOR_{}"

_HOST_ARCHITECTURES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}


def host_architecture() -> str | None:
    """The Lambda architecture this host runs natively (x86_64 or arm64), or None."""
    return _HOST_ARCHITECTURES.get(platform.machine().lower())


def function_architecture(function_version: FunctionVersion) -> str:
    architectures = function_version.config.architectures or ["x86_64"]
    return str(getattr(architectures[0], "value", architectures[0]))


def emulator_for(architecture: str) -> list[str]:
    """The command that runs a binary of ``architecture`` here: [] natively, else the emulator
    named in RESIZER_EMULATOR_<ARCH> (split like a shell would), or [] when none is named."""
    if architecture == host_architecture():
        return []
    return shlex.split(os.environ.get(EMULATOR_ENV.format(architecture.upper()), ""))


def architecture_error(function_version: FunctionVersion) -> str | None:
    wanted, host = function_architecture(function_version), host_architecture()
    if wanted == host or emulator_for(wanted):
        return None
    name, machine = function_version.id.function_name, platform.machine()
    return (
        f"function {name} is built for {wanted}, but this host is {machine}"
        + ("" if machine == host else f" ({host or 'no Lambda architecture'})")
        + ": the local process executor runs function binaries"
        f" natively and cannot run {wanted} code here"
        + (f"; deploy it locally with Architectures: [{host}]" if host else "")
        + f", or name an emulator in {EMULATOR_ENV.format(wanted.upper())} when the local AWS starts"
    )


def _qualifier(function_version: FunctionVersion) -> str:
    return function_version.id.qualifier


class ProcessRuntimeExecutor(RuntimeExecutor):
    def __init__(self, id: str, function_version: FunctionVersion) -> None:  # noqa: A002 - LocalStack's name
        super().__init__(id, function_version)
        self._lock = threading.Lock()
        self._stopped = False
        self._sandbox: Sandbox | None = None
        self._generation = 0
        self._env: dict[str, str] = {}
        self._code_dir: Path | None = None
        self._init_log: str | None = None  # INIT_START and the init output, for the next invocation's logs
        self._init_duration_ms: float | None = None
        self._last_output = ""

    # --- addresses --------------------------------------------------------------------------

    def get_address(self) -> str:
        return "127.0.0.1"

    def get_endpoint_from_executor(self) -> str:
        # LocalStack builds AWS_ENDPOINT_URL=http://<this>:<gateway port> and LOCALSTACK_HOSTNAME from it.
        return "127.0.0.1"

    def get_runtime_endpoint(self) -> str:
        # Only used for LOCALSTACK_RUNTIME_ENDPOINT (the Docker init's callback), which is not passed on.
        return f"http://127.0.0.1:{config.GATEWAY_LISTEN[0].port}/_localstack_lambda/{self.id}"

    # --- versions ---------------------------------------------------------------------------

    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        if function_version.config.package_type == "Image":
            raise LambdaRuntimeException(
                "container image functions cannot run in the local process executor; use a zip package"
            )
        if function_version.config.code:
            # Unzips to $TMPDIR/lambda/awslambda-<region>-tasks/<id>/code (once per version); a
            # function in the hot-reload bucket runs straight from its directory.
            function_version.config.code.prepare_for_execution()
        if error := architecture_error(function_version):
            LOG.warning("%s; invocations will fail", error)

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        # Nothing to undo: the unzipped code may be shared with other versions, and LocalStack deletes
        # it when no version uses it (destroy_code_if_not_used, code.destroy on delete).
        pass

    @classmethod
    def validate_environment(cls) -> bool:
        return True

    # --- lifecycle --------------------------------------------------------------------------

    def start(self, env_vars: dict[str, str]) -> None:
        if error := architecture_error(self.function_version):
            raise LambdaRuntimeException(error)
        code = self.function_version.config.code
        if code is None:
            raise LambdaRuntimeException(f"function {self._name} has no code")
        code_dir = Path(code.get_unzipped_code_location()).resolve()
        bootstrap = code_dir / "bootstrap"
        if not bootstrap.is_file():
            raise LambdaRuntimeException(
                f"function {self._name}: no file 'bootstrap' in its code ({code_dir}); the local process"
                " executor runs custom runtimes (provided.al2023) whose package has an executable bootstrap"
            )
        if not os.access(bootstrap, os.X_OK):
            raise LambdaRuntimeException(f"function {self._name}: {bootstrap} is not executable")
        self._code_dir = code_dir
        env = dict(DEFAULT_ENV)
        for key, value in env_vars.items():
            if value is not None and key not in DROPPED_ENV:
                env[key] = str(value)  # memory size and timeout arrive as integers
        env["LAMBDA_TASK_ROOT"] = str(code_dir)
        if endpoint := os.environ.get(FUNCTION_AWS_ENDPOINT_ENV):
            env["AWS_ENDPOINT_URL"] = endpoint
        self._env = env
        try:
            # No timeout of our own: LocalStack's startup timer calls stop(), which ends the wait.
            self._start_sandbox(timeout=None)
        except InitFailure as failure:
            raise LambdaRuntimeException(self._init_failure_message(failure)) from None

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            sandbox = self._sandbox
        if sandbox is not None:
            self._end_sandbox(sandbox, graceful=True)

    def get_logs(self) -> str:
        sandbox = self._sandbox
        return sandbox.output.tail() if sandbox is not None else self._last_output

    # --- invocations ------------------------------------------------------------------------

    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        request_id = payload["invoke-id"]
        timeout_s = float(self.function_version.config.timeout)
        with self._lock:
            stopped, sandbox = self._stopped, self._sandbox
        if stopped:
            raise LambdaRuntimeException(f"execution environment {self.id} is stopped")

        if sandbox is None or not sandbox.alive:
            # The previous process timed out, crashed or exited: a fresh one, as AWS resets a sandbox.
            if sandbox is not None:
                self._end_sandbox(sandbox, graceful=False)
            try:
                sandbox = self._start_sandbox(timeout=config.LAMBDA_RUNTIME_ENVIRONMENT_TIMEOUT)
            except InitFailure as failure:
                if self._stopped:
                    raise LambdaRuntimeException(f"execution environment {self.id} was stopped") from None
                return self._init_failure_result(request_id, failure)

        init_log, self._init_log = self._init_log, None
        init_duration_ms, self._init_duration_ms = self._init_duration_ms, None
        event = Event(
            request_id=request_id,
            body=payload.get("payload", "").encode("utf-8"),
            deadline_ms=int((time.time() + timeout_s) * 1000),
            function_arn=payload.get("invoked-function-arn") or self.function_version.qualified_arn,
            trace_id=payload.get("trace-id") or "",
            client_context=payload.get("client-context"),
            cognito_identity=payload.get("cognito-identity"),
        )
        outcome = sandbox.invoke(event, timeout_s)
        if outcome.kind in ("timeout", "exit", "closed"):
            # Whatever is left of the process group goes, then its last output is read.
            sandbox.kill()
        output = sandbox.output.mark_and_take()
        if outcome.kind in ("timeout", "exit", "closed"):
            self._end_sandbox(sandbox, graceful=False)
        if outcome.kind == "closed":
            raise LambdaRuntimeException(
                f"execution environment {self.id} was stopped during invocation {request_id}"
            )

        lines = [init_log] if init_log else []
        lines.append(f"START RequestId: {request_id} Version: {_qualifier(self.function_version)}")
        lines.append(output)
        is_error = outcome.kind != "response"
        status = ""
        response = outcome.payload
        if outcome.kind == "timeout":
            message = f"Task timed out after {timeout_s:.2f} seconds"
            lines.append(f"{_now_iso()} {request_id} {message}")
            response = _error_payload("Sandbox.Timedout", f"RequestId: {request_id} Error: {message}")
            status = "Status: timeout"
        elif outcome.kind == "exit":
            message = _exit_message(sandbox.returncode)
            lines.append(f"RequestId: {request_id} Error: {message}\nRuntime.ExitError")
            response = _error_payload("Runtime.ExitError", f"RequestId: {request_id} Error: {message}")
            status = "Status: error\tError Type: Runtime.ExitError"
        lines.append(f"END RequestId: {request_id}")
        lines.append(self._report(request_id, outcome, sandbox.max_memory_mb, init_duration_ms, status))
        return InvocationResult(request_id, response, is_error, _join(lines))

    # --- internals --------------------------------------------------------------------------

    @property
    def _name(self) -> str:
        return self.function_version.id.function_name

    def _start_sandbox(self, timeout: float | None) -> Sandbox:
        with self._lock:
            if self._stopped:
                raise InitFailure("the execution environment was stopped while the runtime was starting", "")
            self._generation += 1
            sandbox = Sandbox(
                bootstrap=str(self._code_dir / "bootstrap"),
                emulator=emulator_for(function_architecture(self.function_version)),
                cwd=str(self._code_dir),
                env=self._env,
                label=f"{self._name}-{self.id[:8]}-{self._generation}",
            )
            self._sandbox = sandbox
        try:
            sandbox.start(timeout)
        except InitFailure as failure:
            self._last_output = failure.output
            with self._lock:
                if self._sandbox is sandbox:
                    self._sandbox = None
            raise
        output = sandbox.output.mark_and_take()
        runtime = self.function_version.config.runtime or "provided"
        self._init_log = _join([f"INIT_START Runtime Version: {runtime} (local process, pid {sandbox.pid})", output])
        self._init_duration_ms = sandbox.init_duration_ms
        LOG.debug(
            "function %s: environment %s started pid %s on %s in %.1f ms",
            self._name,
            self.id,
            sandbox.pid,
            sandbox.address,
            sandbox.init_duration_ms,
        )
        return sandbox

    def _end_sandbox(self, sandbox: Sandbox, graceful: bool) -> None:
        sandbox.close()
        if graceful:
            sandbox.terminate(STOP_GRACE_S)
        else:
            sandbox.kill()
        with self._lock:
            if self._sandbox is sandbox:
                self._last_output = sandbox.output.tail()
                self._sandbox = None

    def _init_failure_message(self, failure: InitFailure) -> str:
        output = failure.output.strip("\n")
        if len(output) > INIT_OUTPUT_IN_ERROR:
            output = "[...]" + output[-INIT_OUTPUT_IN_ERROR:]
        return (
            f"function {self._name}: {self._code_dir}/bootstrap failed during init: {failure.reason}."
            + (f" Its output:\n{output}" if output else " It wrote no output.")
        )

    def _init_failure_result(self, request_id: str, failure: InitFailure) -> InvocationResult:
        """An init that fails while an invocation waits (after a reset) fails that invocation, as on AWS."""
        if failure.error_payload is not None:
            response = failure.error_payload
            error_type = _error_type(failure.error_payload)
        else:
            response = _error_payload("Runtime.ExitError", f"RequestId: {request_id} Error: {failure.reason}")
            error_type = "Runtime.ExitError"
        runtime = self.function_version.config.runtime or "provided"
        logs = _join(
            [
                f"INIT_START Runtime Version: {runtime} (local process)",
                failure.output,
                f"RequestId: {request_id} Error: {failure.reason}\n{error_type}",
                f"START RequestId: {request_id} Version: {_qualifier(self.function_version)}",
                f"END RequestId: {request_id}",
                f"REPORT RequestId: {request_id}\tDuration: 0.00 ms\tBilled Duration: 0 ms\t"
                f"Memory Size: {self.function_version.config.memory_size} MB\tStatus: error\tError Type: {error_type}",
            ]
        )
        return InvocationResult(request_id, response, True, logs)

    def _report(
        self,
        request_id: str,
        outcome: Outcome,
        max_memory_mb: int | None,
        init_duration_ms: float | None,
        status: str,
    ) -> str:
        # AWS bills the init of a cold start together with the invocation.
        billed = math.ceil(outcome.duration_ms + (init_duration_ms or 0))
        fields = [
            f"REPORT RequestId: {request_id}",
            f"Duration: {outcome.duration_ms:.2f} ms",
            f"Billed Duration: {billed} ms",
            f"Memory Size: {self.function_version.config.memory_size} MB",
        ]
        if max_memory_mb is not None:
            fields.append(f"Max Memory Used: {max_memory_mb} MB")
        if init_duration_ms is not None:
            fields.append(f"Init Duration: {init_duration_ms:.2f} ms")
        if status:
            fields.append(status)
        return "\t".join(fields) + "\t"


def _exit_message(returncode: int | None) -> str:
    if not returncode:
        return "Runtime exited without providing a reason"
    return f"Runtime exited with error: {exit_reason(returncode)}"


def _error_payload(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


def _error_type(payload: bytes) -> str:
    try:
        body = json.loads(payload)
    except ValueError:
        return "Runtime.Unknown"
    return str(body.get("errorType") or "Runtime.Unknown") if isinstance(body, dict) else "Runtime.Unknown"


def _join(parts: list[str]) -> str:
    """Log parts as lines: no blank lines (CloudWatch refuses empty events), one newline at the end."""
    lines = [line for part in parts for line in part.splitlines() if line.strip()]
    return "\n".join(lines) + "\n"


def _now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
