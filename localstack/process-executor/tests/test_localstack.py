"""The process executor inside a real LocalStack 4.9.2 (host mode): functions created with boto3 whose
bootstrap is fixture/bootstrap, a Runtime API client standing in for the Rust binaries."""

from __future__ import annotations

import base64
import json
import os
import platform
import shutil
import tempfile
import threading
import time
import unittest
from pathlib import Path

from botocore.exceptions import ClientError

from harness import (
    BOOTSTRAP,
    ROLE,
    SENTINEL,
    STARTUP_TIMEOUT_S,
    LocalStack,
    code_zip,
    group_members,
    process_alive,
    unique,
    wait_for,
)

LS: LocalStack | None = None
HOST_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine())


def setUpModule() -> None:  # noqa: N802 - unittest's name
    global LS
    LS = LocalStack()
    LS.start()


def tearDownModule() -> None:  # noqa: N802 - unittest's name
    started = [int(n.split("-")[1]) for d in Function.dirs for n in os.listdir(d) if n.startswith(("bootstrap-", "child-"))]
    LS.stop()
    try:
        # LocalStack stops its execution environments when it shuts down: nothing may be left behind.
        left = [pid for pid in started if _ours(pid)]
        for pid in left:
            os.kill(pid, 9)
        assert not left, f"processes left behind after LocalStack stopped: {left}"
    finally:
        for d in Function.dirs:
            shutil.rmtree(d, ignore_errors=True)
        LS.cleanup()


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _ours(pid: int) -> bool:
    """A live bootstrap or child of the fixture (PIDs get reused: check the command line too)."""
    cmdline = _cmdline(pid)
    return process_alive(pid) and (BOOTSTRAP.name in cmdline or cmdline.strip() == "sleep 300")


class Function:
    """A function made from fixture/bootstrap, with a directory of its own for what its processes record."""

    dirs: list[str] = []

    def __init__(self, prefix: str, *, env: dict | None = None, timeout: int = 10, memory: int = 128,
                 architecture: str | None = None, code: dict | None = None):
        self.lam = LS.client("lambda")
        self.name = unique(prefix)
        self.dir = tempfile.mkdtemp(prefix=f"{self.name}-")
        Function.dirs.append(self.dir)
        self.arn = self.lam.create_function(
            FunctionName=self.name,
            Runtime="provided.al2023",
            Handler="bootstrap",
            Role=ROLE,
            Code=code or {"ZipFile": code_zip()},
            Timeout=timeout,
            MemorySize=memory,
            Architectures=[architecture or HOST_ARCH],
            Environment={"Variables": {"TEST_DIR": self.dir, **(env or {})}},
        )["FunctionArn"]
        wait_for(self.active, 30, f"{self.name} to become Active")

    def active(self) -> bool:
        config = self.lam.get_function_configuration(FunctionName=self.name)
        if config["State"] == "Failed":
            raise AssertionError(f"{self.name} failed: {config.get('StateReason')}")
        return config["State"] == "Active" and config.get("LastUpdateStatus", "Successful") == "Successful"

    def invoke(self, event: dict | None = None) -> dict:
        """Invoke synchronously; returns payload (parsed), error (FunctionError), logs (Tail), request_id."""
        response = self.lam.invoke(
            FunctionName=self.name, Payload=json.dumps(event or {}).encode(), LogType="Tail"
        )
        raw = response["Payload"].read()
        return {
            "payload": json.loads(raw) if raw else None,
            "error": response.get("FunctionError"),
            "logs": base64.b64decode(response.get("LogResult", "")).decode(errors="replace"),
            "request_id": response["ResponseMetadata"]["RequestId"],
        }

    def recorded(self, kind: str) -> list[int]:
        return sorted(int(n.split("-")[1]) for n in os.listdir(self.dir) if n.startswith(f"{kind}-"))


class ProcessExecutorTest(unittest.TestCase):
    maxDiff = None

    def test_invoke_returns_the_payload_and_reuses_the_process(self):
        fn = Function("echo", timeout=9)
        before_ms = time.time() * 1000
        first = fn.invoke({"action": "echo", "n": 1})
        self.assertIsNone(first["error"], first["payload"])
        self.assertEqual(first["payload"]["event"], {"action": "echo", "n": 1})
        headers = first["payload"]["headers"]
        self.assertEqual(headers["lambda-runtime-aws-request-id"], first["request_id"])
        self.assertEqual(headers["lambda-runtime-invoked-function-arn"], fn.arn)
        self.assertTrue(headers["lambda-runtime-trace-id"].startswith("Root="), headers)
        deadline = int(headers["lambda-runtime-deadline-ms"])
        self.assertTrue(before_ms + 8_000 < deadline < time.time() * 1000 + 9_000, (before_ms, deadline))
        # The first invoke of an environment reports its init, like AWS.
        self.assertIn(f"START RequestId: {first['request_id']} Version: $LATEST", first["logs"])
        self.assertIn("Init Duration: ", first["logs"])
        self.assertIn(f"init: pid {first['payload']['pid']}", first["logs"])

        second = fn.invoke({"action": "echo", "n": 2})
        self.assertEqual(second["payload"]["event"], {"action": "echo", "n": 2})
        self.assertEqual(second["payload"]["pid"], first["payload"]["pid"], "a warm invoke reuses the process")
        self.assertNotIn("Init Duration", second["logs"])
        self.assertEqual(fn.recorded("bootstrap"), [first["payload"]["pid"]])

    def test_the_runtime_gets_only_the_function_environment(self):
        fn = Function("env", memory=256, timeout=7, env={"CUSTOM": "value", "HOME": "/nowhere"})
        result = fn.invoke({"action": "env"})["payload"]
        env = result["env"]
        host, _, port = env["AWS_LAMBDA_RUNTIME_API"].partition(":")
        self.assertEqual(host, "127.0.0.1")
        self.assertNotIn(int(port), (9001, LS.port))
        self.assertEqual(env["AWS_ENDPOINT_URL"], LS.endpoint)
        self.assertEqual(env["AWS_LAMBDA_FUNCTION_NAME"], fn.name)
        self.assertEqual(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256")
        self.assertEqual(env["AWS_LAMBDA_FUNCTION_TIMEOUT"], "7")
        self.assertEqual(env["AWS_LAMBDA_FUNCTION_VERSION"], "$LATEST")
        self.assertEqual(env["AWS_LAMBDA_LOG_GROUP_NAME"], f"/aws/lambda/{fn.name}")
        self.assertEqual(env["CUSTOM"], "value")
        self.assertEqual(env["PATH"], "/usr/local/bin:/usr/bin:/bin")
        self.assertNotIn("HOME", env)
        self.assertNotIn(SENTINEL, env, "LocalStack's own environment leaked into the function")
        self.assertEqual(env["LAMBDA_TASK_ROOT"], result["cwd"])
        self.assertTrue(Path(result["cwd"], "bootstrap").is_file())
        self.assertEqual((result["pgid"], result["sid"]), (result["pid"], result["pid"]), "own session and group")

    def test_a_handler_error_is_a_function_error_and_the_process_stays(self):
        fn = Function("error")
        pid = fn.invoke({"action": "echo"})["payload"]["pid"]
        result = fn.invoke({"action": "error", "message": "bad input"})
        self.assertEqual(result["error"], "Unhandled")
        self.assertEqual(result["payload"], {"errorType": "HandlerError", "errorMessage": "bad input"})
        self.assertEqual(fn.invoke({"action": "echo"})["payload"]["pid"], pid)

    def test_a_timeout_kills_the_process_group_and_the_next_invoke_starts_afresh(self):
        fn = Function("timeout", timeout=1)
        started = time.monotonic()
        result = fn.invoke({"action": "sleep", "seconds": 60, "spawn": True})
        elapsed = time.monotonic() - started
        self.assertEqual(result["error"], "Unhandled")
        self.assertEqual(result["payload"]["errorType"], "Sandbox.Timedout")
        self.assertIn("Task timed out after 1.00 seconds", result["payload"]["errorMessage"])
        self.assertIn(f"{result['request_id']} Task timed out after 1.00 seconds", result["logs"])
        self.assertIn("Status: timeout", result["logs"])
        self.assertTrue(1.0 <= elapsed < 6, elapsed)

        [first_pid] = fn.recorded("bootstrap")
        [child] = fn.recorded("child")
        self.assertFalse(process_alive(first_pid), "the bootstrap survived its timeout")
        wait_for(lambda: not process_alive(child), 5, f"the bootstrap's child {child} to be killed")
        self.assertEqual(group_members(first_pid), [])

        after = fn.invoke({"action": "echo"})
        self.assertIsNone(after["error"], after["payload"])
        self.assertNotEqual(after["payload"]["pid"], first_pid)
        self.assertIn("Init Duration: ", after["logs"], "the fresh process reports its init")

    def test_a_crash_fails_the_invoke_and_the_next_invoke_starts_afresh(self):
        fn = Function("crash")
        pids = [fn.invoke({"action": "echo"})["payload"]["pid"]]
        for event, reason in (
            ({"action": "exit", "code": 1}, "Runtime exited with error: exit status 1"),
            ({"action": "kill"}, "Runtime exited with error: signal: killed"),
        ):
            with self.subTest(event=event):
                result = fn.invoke(event)
                self.assertEqual(result["error"], "Unhandled")
                self.assertEqual(result["payload"]["errorType"], "Runtime.ExitError")
                self.assertIn(reason, result["payload"]["errorMessage"])
                self.assertIn("Runtime.ExitError", result["logs"])
                self.assertFalse(process_alive(pids[-1]))
                after = fn.invoke({"action": "echo"})
                self.assertIsNone(after["error"], after["payload"])
                self.assertNotIn(after["payload"]["pid"], pids)
                pids.append(after["payload"]["pid"])

    def test_an_init_failure_is_a_clear_error(self):
        for mode, expected in (
            ("exit", ["Runtime exited with error: exit status 3", "boom at init"]),
            ("init-error", ["Init.Config: bad config at init"]),
        ):
            with self.subTest(mode=mode):
                fn = Function(f"init-{mode}", env={"TEST_INIT": mode})
                with self.assertRaises(ClientError) as caught:
                    fn.invoke({"action": "echo"})
                message = str(caught.exception)
                for text in expected:
                    self.assertIn(text, message)
                self.assertIn("failed during init", message)
                self.assertEqual(len(fn.recorded("bootstrap")), 1, "one invoke, one attempt")
                for pid in fn.recorded("bootstrap"):
                    self.assertFalse(process_alive(pid))

    def test_a_hanging_init_meets_the_startup_timeout(self):
        # LocalStack's startup timer calls stop() while start() waits for the runtime's first /next.
        fn = Function("init-hang", env={"TEST_INIT": "hang"})
        started = time.monotonic()
        with self.assertRaises(ClientError) as caught:
            fn.invoke({"action": "echo"})
        self.assertIn("Timeout while starting up lambda environment", str(caught.exception))
        self.assertLess(time.monotonic() - started, STARTUP_TIMEOUT_S + 5)
        [pid] = fn.recorded("bootstrap")
        wait_for(lambda: not group_members(pid), 5, f"the hanging bootstrap's group {pid} to be gone")

    def test_concurrent_invokes_run_in_separate_processes(self):
        fn = Function("concurrent", timeout=30)
        results, errors = [], []

        def invoke():
            try:
                results.append(fn.invoke({"action": "gather", "count": 3, "wait": 20}))
            except Exception as err:  # noqa: BLE001 - reported below
                errors.append(err)

        threads = [threading.Thread(target=invoke) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        pids = {r["payload"]["pid"] for r in results}
        pgids = {r["payload"]["pgid"] for r in results}
        self.assertEqual(len(pids), 3, results)
        self.assertEqual(pgids, pids)
        self.assertEqual(len(fn.recorded("gather")), 3)

    def test_logs_reach_cloudwatch_logs(self):
        fn = Function("logs")
        token = unique("token")
        result = fn.invoke({"action": "log", "token": token})
        request_id = result["request_id"]
        for text in (f"{token} on stdout", f"{token} on stderr", f"{token} without a newline"):
            self.assertIn(text, result["logs"])
        logs = LS.client("logs")

        def messages():
            try:
                events = logs.filter_log_events(logGroupName=f"/aws/lambda/{fn.name}")["events"]
            except logs.exceptions.ResourceNotFoundException:
                return None
            text = [e["message"].rstrip("\n") for e in events]
            return text if any(m.startswith(f"REPORT RequestId: {request_id}") for m in text) else None

        lines = wait_for(messages, 15, f"the logs of {request_id} in CloudWatch Logs")
        self.assertIn(f"START RequestId: {request_id} Version: $LATEST", lines)
        self.assertIn(f"{token} on stdout", lines)
        self.assertIn(f"{token} on stderr", lines)
        self.assertIn(f"{token} without a newline", lines)
        self.assertIn(f"END RequestId: {request_id}", lines)
        self.assertTrue(lines.index(f"{token} on stdout") < lines.index(f"END RequestId: {request_id}"))
        [report] = [m for m in lines if m.startswith("REPORT ")]
        for field in ("Duration: ", "Billed Duration: ", "Memory Size: 128 MB", "Max Memory Used: ", "Init Duration: "):
            self.assertIn(field, report)
        self.assertTrue(any(m.startswith("INIT_START ") for m in lines), lines)

    def test_another_architecture_is_refused(self):
        other = {"x86_64": "arm64", "arm64": "x86_64"}[HOST_ARCH]
        fn = Function("arch", architecture=other)
        with self.assertRaises(ClientError) as caught:
            fn.invoke({"action": "echo"})
        message = str(caught.exception)
        self.assertIn(f"built for {other}", message)
        self.assertIn(f"cannot run {other} code", message)
        self.assertIn(platform.machine(), message)
        self.assertEqual(fn.recorded("bootstrap"), [], "nothing was started")

    def test_sqs_event_source_mapping_with_report_batch_item_failures(self):
        fn = Function("sqs")
        sqs = LS.client("sqs")
        queue_url = sqs.create_queue(QueueName=unique("jobs"), Attributes={"VisibilityTimeout": "1"})["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        ok_id = sqs.send_message(QueueUrl=queue_url, MessageBody="ok")["MessageId"]
        fail_id = sqs.send_message(QueueUrl=queue_url, MessageBody="fail")["MessageId"]
        mapping = fn.lam.create_event_source_mapping(
            EventSourceArn=queue_arn,
            FunctionName=fn.name,
            BatchSize=10,
            FunctionResponseTypes=["ReportBatchItemFailures"],
        )["UUID"]
        try:
            def seen(message_id):
                return [n for n in os.listdir(fn.dir) if n.startswith(f"sqs-{message_id}-")]

            # The failed item comes back (visibility timeout 1 s); the successful one is deleted.
            wait_for(lambda: len(seen(fail_id)) >= 2, 30, "the failed message to be delivered again")
            wait_for(lambda: seen(ok_id), 5, "the ok message to be delivered")
        finally:
            fn.lam.delete_event_source_mapping(UUID=mapping)
        self.assertEqual(len(seen(ok_id)), 1, "the successful message was delivered again")

        def remaining():
            attributes = sqs.get_queue_attributes(
                QueueUrl=queue_url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            return sum(int(v) for v in attributes.values())

        wait_for(lambda: remaining() == 1, 10, "only the failed message to remain in the queue")
        [message] = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=5)["Messages"]
        self.assertEqual(message["Body"], "fail")

    def test_stopping_an_environment_leaves_no_process(self):
        fn = Function("stop")
        result = fn.invoke({"action": "spawn"})["payload"]
        pid, child = result["pid"], result["child"]
        self.assertTrue(process_alive(child))
        self.assertEqual(set(group_members(pid)), {pid, child})
        fn.lam.delete_function(FunctionName=fn.name)  # LocalStack stops the function's environments
        wait_for(lambda: not group_members(pid), 10, f"process group {pid} to be gone")
        self.assertFalse(process_alive(pid))
        self.assertFalse(process_alive(child))

    def test_an_update_replaces_the_environment(self):
        fn = Function("update", env={"GENERATION": "1"})
        first = fn.invoke({"action": "env"})["payload"]
        self.assertEqual(first["env"]["GENERATION"], "1")
        fn.lam.update_function_configuration(
            FunctionName=fn.name, Environment={"Variables": {"TEST_DIR": fn.dir, "GENERATION": "2"}}
        )
        wait_for(fn.active, 30, "the update")
        second = fn.invoke({"action": "env"})["payload"]
        self.assertEqual(second["env"]["GENERATION"], "2")
        self.assertNotEqual(second["pid"], first["pid"])
        wait_for(lambda: not process_alive(first["pid"]), 10, "the old environment's process to stop")

    def test_code_in_the_hot_reload_bucket_runs_from_its_directory(self):
        code_dir = tempfile.mkdtemp(prefix="process-executor-hot-reload-")
        Function.dirs.append(code_dir)
        shutil.copy2(BOOTSTRAP, code_dir)
        os.chmod(Path(code_dir, "bootstrap"), 0o755)
        fn = Function("hot-reload", code={"S3Bucket": "hot-reload", "S3Key": code_dir})
        result = fn.invoke({"action": "env"})["payload"]
        self.assertEqual(result["env"]["LAMBDA_TASK_ROOT"], code_dir)
        self.assertEqual(result["cwd"], code_dir)


if __name__ == "__main__":
    unittest.main()
