"""The executor class on its own (no LocalStack running): what LocalStack's threads can do to it."""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import threading
import time
import unittest
from types import SimpleNamespace
from unittest import mock

os.environ.setdefault("OVERRIDE_IN_DOCKER", "0")  # before LocalStack's config is imported

from harness import BOOTSTRAP, group_members, process_alive, wait_for  # noqa: E402
from localstack.services.lambda_.invocation.lambda_models import HotReloadingCode  # noqa: E402
from localstack.services.lambda_.invocation.runtime_executor import LambdaRuntimeException  # noqa: E402
from resizer_localstack_process.executor import ProcessRuntimeExecutor, host_architecture  # noqa: E402

ARN = "arn:aws:lambda:us-east-1:000000000000:function:unit"


class ExecutorTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="process-executor-unit-")
        self.code = os.path.join(self.dir, "code")
        os.mkdir(self.code)
        shutil.copy2(BOOTSTRAP, self.code)
        self.executors = []

    def tearDown(self):
        for executor in self.executors:
            executor.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def executor(self, *, timeout=3, architecture=None, init="") -> tuple[ProcessRuntimeExecutor, dict]:
        version = SimpleNamespace(
            id=SimpleNamespace(function_name="unit", qualifier="$LATEST", region="us-east-1", account="000000000000"),
            qualified_arn=f"{ARN}:$LATEST",
            config=SimpleNamespace(
                architectures=[architecture or host_architecture()],
                code=HotReloadingCode(host_path=self.code),
                timeout=timeout,
                memory_size=128,
                runtime="provided.al2023",
                package_type="Zip",
            ),
        )
        executor = ProcessRuntimeExecutor("0123456789abcdef", version)
        self.executors.append(executor)
        env = {
            "AWS_LAMBDA_FUNCTION_NAME": "unit",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": 128,  # an int, as LocalStack passes it
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_TIMEOUT": timeout,
            "TEST_DIR": self.dir,
            "TEST_INIT": init,
        }
        return executor, env

    def recorded(self, kind):
        return sorted(int(n.split("-")[1]) for n in os.listdir(self.dir) if n.startswith(f"{kind}-"))

    @staticmethod
    def payload(request_id, event):
        return {"invoke-id": request_id, "invoked-function-arn": ARN, "payload": json.dumps(event), "trace-id": "Root=1-0-0"}

    def test_invoke_logs_and_stop(self):
        executor, env = self.executor()
        executor.start(env)
        [pid] = self.recorded("bootstrap")
        result = executor.invoke(self.payload("req-1", {"action": "spawn"}))
        self.assertFalse(result.is_error)
        self.assertEqual(result.request_id, "req-1")
        body = json.loads(result.payload)
        self.assertEqual(body["pid"], pid)
        lines = result.logs.splitlines()
        self.assertTrue(lines[0].startswith("INIT_START Runtime Version: provided.al2023"), lines)
        self.assertEqual(lines[1:4], [f"init: pid {pid}", "START RequestId: req-1 Version: $LATEST", "handling req-1: spawn"])
        self.assertEqual(lines[-2], "END RequestId: req-1")
        self.assertRegex(
            lines[-1],
            r"^REPORT RequestId: req-1\tDuration: \d+\.\d\d ms\tBilled Duration: \d+ ms\tMemory Size: 128 MB\t"
            r"Max Memory Used: \d+ MB\tInit Duration: \d+\.\d\d ms\t$",
        )
        second = executor.invoke(self.payload("req-2", {"action": "echo"}))
        self.assertEqual(second.logs.splitlines()[0], "START RequestId: req-2 Version: $LATEST")
        self.assertEqual(set(group_members(pid)), {pid, body["child"]})

        executor.stop()
        self.assertEqual(group_members(pid), [], "stop() returns once the group is gone")
        executor.stop()  # idempotent
        with self.assertRaises(LambdaRuntimeException):
            executor.invoke(self.payload("req-3", {"action": "echo"}))

    def test_the_functions_aws_endpoint_can_be_replaced(self):
        # LocalStack passes its gateway; RESIZER_FUNCTION_AWS_ENDPOINT (the fault proxy) replaces it.
        for override, expected in (("", "http://127.0.0.1:4566"), ("http://127.0.0.1:4567", "http://127.0.0.1:4567")):
            with self.subTest(override=override):
                executor, env = self.executor()
                env["AWS_ENDPOINT_URL"] = "http://127.0.0.1:4566"
                previous = os.environ.pop("RESIZER_FUNCTION_AWS_ENDPOINT", None)
                try:
                    if override:
                        os.environ["RESIZER_FUNCTION_AWS_ENDPOINT"] = override
                    executor.start(env)
                finally:
                    os.environ.pop("RESIZER_FUNCTION_AWS_ENDPOINT", None)
                    if previous is not None:
                        os.environ["RESIZER_FUNCTION_AWS_ENDPOINT"] = previous
                result = executor.invoke(self.payload("req-env", {"action": "env"}))
                self.assertEqual(json.loads(result.payload)["env"]["AWS_ENDPOINT_URL"], expected)
                executor.stop()

    def test_stop_during_start_ends_start(self):
        # LocalStack's startup timer calls stop() from another thread while start() waits.
        executor, env = self.executor(init="hang")
        errors = []

        def start():
            try:
                executor.start(env)
            except LambdaRuntimeException as err:
                errors.append(err)

        thread = threading.Thread(target=start)
        thread.start()
        [pid] = wait_for(lambda: self.recorded("bootstrap"), 10, "the bootstrap to start")
        stopped = time.monotonic()
        executor.stop()
        thread.join(10)
        self.assertFalse(thread.is_alive(), "start() still waits after stop()")
        self.assertLess(time.monotonic() - stopped, 5)
        self.assertEqual(len(errors), 1)
        self.assertIn("stopped while the runtime was starting", str(errors[0]))
        self.assertFalse(process_alive(pid))
        self.assertEqual(group_members(pid), [])

    def test_an_init_failure_names_the_reason_and_the_output(self):
        executor, env = self.executor(init="exit")
        with self.assertRaises(LambdaRuntimeException) as caught:
            executor.start(env)
        message = str(caught.exception)
        self.assertIn("failed during init: Runtime exited with error: exit status 3", message)
        self.assertIn("boom at init", message)
        self.assertIn("boom at init", executor.get_logs())

    def test_a_failed_restart_fails_the_invocation(self):
        # After a crash, the next invocation starts a fresh process; if its init fails, that invocation
        # gets the error (as on AWS) and the environment tries again next time.
        executor, env = self.executor(init="exit-if-marked")
        executor.start(env)
        crash = executor.invoke(self.payload("req-1", {"action": "exit", "code": 2}))
        self.assertTrue(crash.is_error)
        self.assertIn("Runtime exited with error: exit status 2", json.loads(crash.payload)["errorMessage"])
        open(os.path.join(self.dir, "fail-init"), "w").close()
        failed = executor.invoke(self.payload("req-2", {"action": "echo"}))
        self.assertTrue(failed.is_error)
        self.assertEqual(json.loads(failed.payload)["errorType"], "Runtime.ExitError")
        self.assertIn("exit status 3", json.loads(failed.payload)["errorMessage"])
        self.assertIn("boom at init", failed.logs)
        self.assertIn("REPORT RequestId: req-2", failed.logs)
        os.unlink(os.path.join(self.dir, "fail-init"))
        again = executor.invoke(self.payload("req-3", {"action": "echo"}))
        self.assertFalse(again.is_error, again.payload)
        self.assertEqual(len(self.recorded("bootstrap")), 3)

    def test_a_timeout_answers_like_aws(self):
        executor, env = self.executor(timeout=1)
        executor.start(env)
        started = time.monotonic()
        result = executor.invoke(self.payload("req-1", {"action": "sleep", "seconds": 60, "spawn": True}))
        self.assertLess(time.monotonic() - started, 3)
        self.assertTrue(result.is_error)
        self.assertEqual(
            json.loads(result.payload),
            {"errorType": "Sandbox.Timedout", "errorMessage": "RequestId: req-1 Error: Task timed out after 1.00 seconds"},
        )
        self.assertIn("Status: timeout", result.logs.splitlines()[-1])
        [pid], [child] = self.recorded("bootstrap"), self.recorded("child")
        self.assertEqual(group_members(pid), [])
        self.assertFalse(process_alive(child))

    def test_another_architecture_is_refused_before_anything_starts(self):
        other = {"x86_64": "arm64", "arm64": "x86_64"}[host_architecture()]
        executor, env = self.executor(architecture=other)
        with self.assertRaises(LambdaRuntimeException) as caught:
            executor.start(env)
        self.assertIn(f"built for {other}, but this host is {platform.machine()}", str(caught.exception))
        self.assertEqual(self.recorded("bootstrap"), [])
        self.assertIn("RESIZER_EMULATOR_", str(caught.exception))

    def test_another_architecture_runs_under_the_emulator_named_for_it(self):
        # A stand-in for qemu-user: records its PID, then execs the binary it is given (same PID).
        emulator = os.path.join(self.dir, "emulator")
        with open(emulator, "w") as f:
            f.write('#!/bin/sh\n: > "$TEST_DIR/emulator-$$"\nexec "$@"\n')
        os.chmod(emulator, 0o755)
        other = {"x86_64": "arm64", "arm64": "x86_64"}[host_architecture()]
        executor, env = self.executor(architecture=other)
        with mock.patch.dict(os.environ, {f"RESIZER_EMULATOR_{other.upper()}": f"{emulator}"}):
            executor.start(env)
        result = executor.invoke(self.payload("req-1", {"action": "spawn"}))
        self.assertFalse(result.is_error, result.logs)
        [pid] = self.recorded("bootstrap")
        self.assertEqual(self.recorded("emulator"), [pid], "the bootstrap ran under the emulator")
        self.assertEqual(json.loads(result.payload)["pid"], pid)


if __name__ == "__main__":
    unittest.main()
