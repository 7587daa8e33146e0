"""Test harness: a LocalStack of its own (host mode, process executor) and functions made from fixture/.

The LocalStack is started with the settings of localstack/up.sh (keep them in step) on a free loopback
port (or $RESIZER_EXECUTOR_TEST_PORT), with its state in a temporary directory and only the services
the tests use, so that it never meets the checkout's own `make up` LocalStack (PID file, port, state).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
import zipfile
from pathlib import Path

import boto3
from botocore.config import Config

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
BOOTSTRAP = HERE / "fixture" / "bootstrap"
REGION = "us-east-1"
ROLE = "arn:aws:iam::000000000000:role/process-executor-test"
SERVICES = "lambda,logs,sqs,s3,sts,iam"
READY_TIMEOUT_S = 180
STARTUP_TIMEOUT_S = 5
# Set in LocalStack's own environment: a function must never see it.
SENTINEL = "RESIZER_EXECUTOR_TEST_SENTINEL"

sys.path.insert(0, str(HERE.parent))  # the plugin's sandbox.group_members, without installing anything
from resizer_localstack_process.sandbox import group_members  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def process_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :].split()[0] not in (b"Z", b"X")


class LocalStack:
    def __init__(self) -> None:
        self.venv = ROOT / ".local" / "localstack" / "venv"
        self.port = int(os.environ.get("RESIZER_EXECUTOR_TEST_PORT") or free_port())
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.state = Path(tempfile.mkdtemp(prefix="process-executor-test-"))
        self.log_path = self.state / "localstack.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        if not (self.venv / "bin" / "python").exists():
            raise RuntimeError("LocalStack is not installed: run localstack/install.sh (make setup)")
        (self.state / "tmp").mkdir()
        env = dict(os.environ)
        env.update(
            {
                "OVERRIDE_IN_DOCKER": "0",
                "FILESYSTEM_ROOT": str(self.state / "fs"),
                "GATEWAY_LISTEN": f"127.0.0.1:{self.port}",
                "GATEWAY_SERVER": "hypercorn",
                "LOCALSTACK_HOST": f"127.0.0.1:{self.port}",
                "SQS_ENDPOINT_STRATEGY": "path",
                "SKIP_SSL_CERT_DOWNLOAD": "1",
                "DNS_ADDRESS": "0",
                "DISABLE_EVENTS": "1",
                "PERSISTENCE": "0",
                "EAGER_SERVICE_LOADING": "1",
                "SERVICES": SERVICES,
                "LAMBDA_RUNTIME_EXECUTOR": "process",
                "DEBUG": os.environ.get("RESIZER_LOCALSTACK_DEBUG", "0"),
                # Tests only: a hanging init meets LocalStack's startup timer after 5 s instead of 20 s.
                "LAMBDA_RUNTIME_ENVIRONMENT_TIMEOUT": str(STARTUP_TIMEOUT_S),
                # Tests only: the SQS poller backs off up to 10 s on an empty queue by default.
                "LAMBDA_EVENT_SOURCE_MAPPING_MAX_BACKOFF_ON_EMPTY_POLL_SEC": "1",
                # Unzipped function code goes to $TMPDIR/lambda/...: keep it in the state directory.
                "TMPDIR": str(self.state / "tmp"),
                SENTINEL: "LocalStack's own environment",
            }
        )
        env.setdefault("HOME", "/root")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(self.venv / "bin" / "python"), "-m", "localstack.runtime.main"],
                cwd=self.state,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started = time.monotonic()
        try:
            wait_for(self._ready, READY_TIMEOUT_S, f"LocalStack on {self.endpoint}", interval=0.25)
        except BaseException:
            print(self.log_tail(), file=sys.stderr)
            self.stop()
            raise
        print(f"LocalStack ready on {self.endpoint} in {time.monotonic() - started:.1f} s", file=sys.stderr)

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"LocalStack exited ({self.proc.returncode}) during startup:\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(f"{self.endpoint}/_localstack/health", timeout=2) as r:
                services = json.load(r)["services"]
            with urllib.request.urlopen(f"{self.endpoint}/_localstack/init/ready", timeout=2) as r:
                init = json.load(r)
        except (OSError, ValueError, KeyError):
            return False
        return init.get("completed") is True and all(
            services.get(s) in ("running", "available") for s in SERVICES.split(",")
        )

    def stop(self) -> None:
        """SIGTERM LocalStack (which stops its execution environments), then SIGKILL its group."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                print("LocalStack did not stop within 30 s; killing it", file=sys.stderr)
        if group_members(self.proc.pid):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def cleanup(self) -> None:
        if os.environ.get("RESIZER_EXECUTOR_TEST_KEEP"):
            print(f"kept {self.state}", file=sys.stderr)
        else:
            shutil.rmtree(self.state, ignore_errors=True)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def client(self, service: str):
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            # No retries: a retried Invoke would run the function twice.
            config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=120, connect_timeout=5),
        )


def code_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo("bootstrap", date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o100755 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, BOOTSTRAP.read_bytes())
    return buffer.getvalue()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
