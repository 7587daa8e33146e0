"""One run of a function's ``bootstrap``: its process group, its Lambda Runtime API, its output.

A ``Sandbox`` lives from one process start to that process's end. The executor (``executor.py``)
starts a new one whenever the previous process timed out, crashed or exited.

- The process runs in a session and process group of its own (``start_new_session``); ``kill`` and
  ``terminate`` signal the whole group, so children and grandchildren go with it.
- A small HTTP server on ``127.0.0.1:<free port>`` serves it the Runtime API
  (``/2018-06-01/runtime/...``): ``invocation/next`` blocks until ``invoke`` queues an event.
- stdout and stderr share one pipe, read on a thread. To find where one invocation's output ends, the
  executor writes a unique marker into the same pipe (``OutputPump.mark_and_take``): everything the
  process wrote before it finished the invocation precedes the marker.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import select
import signal
import shlex
import socketserver
import subprocess
import threading
import time
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = logging.getLogger(__name__)

API_PREFIX = "/2018-06-01/runtime"

# Output kept for get_logs() (LocalStack prints it when an environment fails to start).
OUTPUT_TAIL_BYTES = 256 * 1024
# Output not yet claimed by an invocation (written between invocations); beyond this the oldest half is dropped.
PENDING_OUTPUT_LIMIT = 8 * 1024 * 1024
# How long to wait for a marker to come back through the pipe (it normally takes microseconds).
MARKER_WAIT_S = 5.0

_MARKER_PREFIX = b"\x00resizer-process-executor-mark-"
_MARKER_RE = re.compile(rb"\n?\x00resizer-process-executor-mark-[0-9a-f]{32}\x00\n?")

# How Go (and so the real Lambda init) names the signals that end a runtime: "signal: killed".
_SIGNAL_NAMES = {
    signal.SIGABRT: "aborted",
    signal.SIGALRM: "alarm clock",
    signal.SIGBUS: "bus error",
    signal.SIGFPE: "floating point exception",
    signal.SIGHUP: "hangup",
    signal.SIGILL: "illegal instruction",
    signal.SIGINT: "interrupt",
    signal.SIGKILL: "killed",
    signal.SIGPIPE: "broken pipe",
    signal.SIGQUIT: "quit",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGTERM: "terminated",
    signal.SIGTRAP: "trace/breakpoint trap",
    signal.SIGUSR1: "user defined signal 1",
    signal.SIGUSR2: "user defined signal 2",
    signal.SIGXCPU: "CPU time limit exceeded",
}


def exit_reason(returncode: int) -> str:
    """The wait status as Go's os.ProcessState prints it: "exit status 1", "signal: killed"."""
    if returncode < 0:
        number = -returncode
        try:
            name = _SIGNAL_NAMES.get(signal.Signals(number)) or signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return f"signal: {name}"
    return f"exit status {returncode}"


def group_members(pgid: int) -> list[int]:
    """PIDs of the live (not zombie) processes in process group ``pgid``, from /proc."""
    members = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return members
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...; comm may contain spaces and parentheses.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            members.append(int(name))
    return members


def peak_rss_mb(pid: int) -> int | None:
    """The process's peak resident set size (VmHWM) in MB, while it exists."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return max(1, round(int(line.split()[1]) / 1024))
    except (OSError, ValueError, IndexError):
        pass
    return None


@dataclasses.dataclass
class Event:
    """An invocation as /invocation/next hands it out."""

    request_id: str
    body: bytes
    deadline_ms: int
    function_arn: str
    trace_id: str
    client_context: str | None = None
    cognito_identity: str | None = None


@dataclasses.dataclass
class Outcome:
    """How an invocation ended: "response" or "error" (posted by the runtime), "timeout", "exit"
    (the process ended first) or "closed" (the sandbox was stopped meanwhile)."""

    kind: str
    payload: bytes
    duration_ms: float


class InitFailure(Exception):
    """The process ended, reported an init error, or was stopped before it asked for an event."""

    def __init__(self, reason: str, output: str, error_payload: bytes | None = None):
        super().__init__(reason)
        self.reason = reason
        self.output = output
        self.error_payload = error_payload


class OutputPump:
    """Reads a process's stdout and stderr (one pipe) on a thread of its own."""

    def __init__(self, label: str):
        self.read_fd, self.write_fd = os.pipe()
        self._cond = threading.Condition()
        self._pending = bytearray()  # not yet claimed by mark_and_take
        self._tail = bytearray()  # everything, bounded, for get_logs()
        self._dropped = 0
        self._eof = False
        self._closing = False
        # Guards write_fd: a marker must never be written to a number that close() released for reuse.
        self._write_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"process-executor-output-{label}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                # select with a timeout: a process that escaped its group could hold the pipe open forever.
                ready, _, _ = select.select([self.read_fd], [], [], 1.0)
                if not ready:
                    if self._closing:
                        return
                    continue
                chunk = os.read(self.read_fd, 65536)
                if not chunk:
                    return
                with self._cond:
                    self._pending += chunk
                    if len(self._pending) > PENDING_OUTPUT_LIMIT:
                        cut = len(self._pending) - PENDING_OUTPUT_LIMIT // 2
                        del self._pending[:cut]
                        self._dropped += cut
                    self._tail += chunk
                    if len(self._tail) > OUTPUT_TAIL_BYTES:
                        del self._tail[: len(self._tail) - OUTPUT_TAIL_BYTES]
                    self._cond.notify_all()
        except OSError as err:
            LOG.debug("output pipe: %s", err)
        finally:
            with self._cond:
                self._eof = True
                self._cond.notify_all()
            os.close(self.read_fd)

    def mark_and_take(self, timeout: float = MARKER_WAIT_S) -> str:
        """Everything the process wrote until now that no earlier call returned."""
        token = _MARKER_PREFIX + uuid.uuid4().hex.encode() + b"\x00"
        with self._write_lock:
            try:
                if self._closing:
                    raise OSError("closed")
                # A leading newline ends a last line that has none; pipe writes this small are atomic.
                os.write(self.write_fd, b"\n" + token + b"\n")
            except OSError:
                token = b""  # then: everything until the end of the output
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                at = self._pending.find(token) if token else -1
                if at >= 0:
                    data = bytes(self._pending[:at])
                    del self._pending[: at + len(token)]
                    break
                remaining = deadline - time.monotonic()
                if self._eof or remaining <= 0:
                    data = bytes(self._pending)
                    self._pending.clear()
                    break
                self._cond.wait(remaining)
            dropped, self._dropped = self._dropped, 0
        text = _MARKER_RE.sub(b"\n", data).decode("utf-8", "replace")
        if dropped:
            text = f"[process executor: {dropped} bytes of earlier output dropped]\n{text}"
        return text

    def spawn(self, argv: list[str], **kwargs) -> subprocess.Popen:
        """Popen with stdout and stderr on the pipe; refused (OSError) once close() has run."""
        with self._write_lock:
            if self._closing:
                raise OSError("the execution environment was stopped")
            return subprocess.Popen(argv, stdout=self.write_fd, stderr=self.write_fd, **kwargs)

    def tail(self) -> str:
        with self._cond:
            data = bytes(self._tail)
        return _MARKER_RE.sub(b"\n", data).decode("utf-8", "replace").strip("\n")

    def close(self) -> None:
        with self._write_lock:
            if self._closing:
                return
            self._closing = True
            os.close(self.write_fd)


class Sandbox:
    """One process of a function's bootstrap and the Runtime API it talks to."""

    def __init__(self, *, bootstrap: str, cwd: str, env: dict[str, str], label: str, emulator: list[str] = ()):
        self.label = label
        self._bootstrap = bootstrap
        self._argv = [*emulator, bootstrap]  # an emulator (qemu-user) runs a foreign architecture's binary
        self._cwd = cwd
        self._cond = threading.Condition()
        self._ready_at: float | None = None
        self._exited = False
        self._closed = False
        self._init_error: bytes | None = None
        self._pending: Event | None = None  # queued for /next
        self._current: str | None = None  # the request id in flight
        self._result: tuple[str, bytes] | None = None
        self._serving = False
        self._group_gone = False
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None
        self.returncode: int | None = None
        self.init_duration_ms: float | None = None
        self.max_memory_mb: int | None = None
        self._server = _RuntimeApiServer(("127.0.0.1", 0), _RuntimeApiHandler)
        self._server.sandbox = self
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        self._env = dict(env, AWS_LAMBDA_RUNTIME_API=self.address)
        self.output = OutputPump(label)

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self, timeout: float | None = None) -> None:
        """Start the process and wait until it asks for its first event (or ``timeout`` passes).

        Raises InitFailure, after killing the process group and closing the sandbox, when the process
        ends first, posts /init/error, or the sandbox is closed meanwhile (``close`` from another thread).
        """
        with self._cond:
            # close() (from another thread) either ran before, or sees _serving and shuts the server down.
            if self._closed:
                raise InitFailure("the execution environment was stopped while the runtime was starting", "")
            threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.2},
                name=f"process-executor-api-{self.label}",
                daemon=True,
            ).start()
            self._serving = True
        started = time.monotonic()
        try:
            self.proc = self.output.spawn(
                self._argv,
                cwd=self._cwd,
                env=self._env,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as err:
            self.close()
            raise InitFailure(f"cannot start {shlex.join(self._argv)}: {err.strerror or err}", "") from err
        self.pid = self.proc.pid
        threading.Thread(target=self._reap, name=f"process-executor-wait-{self.label}", daemon=True).start()

        deadline = None if timeout is None else started + timeout
        with self._cond:
            while self._ready_at is None and not self._exited and not self._closed and self._init_error is None:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._cond.wait(remaining)
            if self._init_error is None and self._ready_at is not None and not self._closed:
                self.init_duration_ms = (self._ready_at - started) * 1000
                return
            init_error, closed, exited = self._init_error, self._closed, self._exited
        if init_error is not None:
            reason = f"the runtime reported an init error: {_error_summary(init_error)}"
        elif closed:
            reason = "the execution environment was stopped while the runtime was starting"
        elif exited:
            reason = f"Runtime exited with error: {exit_reason(self.returncode)}" if self.returncode else (
                "Runtime exited without providing a reason"
            )
        else:
            reason = f"the runtime did not ask for an event within {timeout:.0f} s"
        self.kill()
        output = self.output.mark_and_take()
        self.close()
        raise InitFailure(reason, output, init_error)

    def _reap(self) -> None:
        returncode = self.proc.wait()
        # When the runtime ends, so does the rest of its group, at once (as a Lambda sandbox is reset).
        # This also means the group's number is never signalled after it could have been reused.
        self.kill()
        with self._cond:
            self.returncode = returncode
            self._exited = True
            self._cond.notify_all()

    @property
    def alive(self) -> bool:
        with self._cond:
            return not (self._exited or self._closed)

    def _signal_group(self, sig: int) -> bool:
        """Signal the process group while it has live members; False once it is gone."""
        if self.pid is None or self._group_gone:
            return False
        # Check first: once the group is empty its number may be reused by an unrelated group.
        if not group_members(self.pid):
            self._group_gone = True
            return False
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            self._group_gone = True
            return False
        except PermissionError as err:
            LOG.warning("cannot signal process group %s: %s", self.pid, err)
        return True

    def _wait_group_gone(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if self.pid is None or self._group_gone or not group_members(self.pid):
                self._group_gone = True
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    def kill(self) -> None:
        """SIGKILL the whole process group and wait (briefly) until it is gone."""
        if self._signal_group(signal.SIGKILL) and not self._wait_group_gone(5.0):
            LOG.warning("process group %s of %s survived SIGKILL", self.pid, self.label)

    def terminate(self, grace_s: float) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left after ``grace_s``."""
        if self._signal_group(signal.SIGTERM) and not self._wait_group_gone(grace_s):
            self.kill()

    def close(self) -> None:
        """Stop serving and wake every waiter. Idempotent. Does not signal the process."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            serving = self._serving
            self._cond.notify_all()
        self.output.close()
        if serving:
            # serve_forever notices a shutdown within its poll interval; nobody needs to wait for that.
            threading.Thread(target=self._shutdown_server, name=f"process-executor-close-{self.label}", daemon=True).start()
        else:
            self._server.server_close()

    def _shutdown_server(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- invocations --------------------------------------------------------------------------

    def invoke(self, event: Event, timeout_s: float) -> Outcome:
        """Hand ``event`` to the runtime and wait for its response, its end, or the timeout."""
        started = time.monotonic()
        deadline = started + timeout_s
        with self._cond:
            self._result = None
            self._current = event.request_id
            self._pending = event
            self._cond.notify_all()
            while True:
                if self._result is not None:
                    kind, payload = self._result
                    break
                if self._exited:
                    kind, payload = "exit", b""
                    break
                if self._closed:
                    kind, payload = "closed", b""
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    kind, payload = "timeout", b""
                    break
                self._cond.wait(remaining)
            self._pending = None
            self._current = None
            self._result = None
        duration_ms = (time.monotonic() - started) * 1000
        if kind != "exit":
            self.max_memory_mb = peak_rss_mb(self.pid) or self.max_memory_mb
        return Outcome(kind, payload, duration_ms)

    # --- called by the Runtime API handler threads ----------------------------------------------

    def next_event(self) -> Event | None:
        with self._cond:
            if self._ready_at is None:
                self._ready_at = time.monotonic()
                self._cond.notify_all()
            while self._pending is None and not self._closed and not self._exited:
                self._cond.wait()
            event, self._pending = self._pending, None
            return event

    def post_result(self, request_id: str, kind: str, payload: bytes) -> bool:
        with self._cond:
            if request_id != self._current or self._pending is not None or self._result is not None:
                return False
            self._result = (kind, payload)
            self._cond.notify_all()
            return True

    def post_init_error(self, payload: bytes) -> bool:
        with self._cond:
            if self._ready_at is not None:
                return False
            self._init_error = payload
            self._cond.notify_all()
            return True


def _error_summary(payload: bytes) -> str:
    """errorType: errorMessage of a Runtime API error body, or the body itself."""
    text = payload.decode("utf-8", "replace").strip()
    try:
        body = json.loads(text)
    except ValueError:
        return text[:2000]
    if isinstance(body, dict) and ("errorType" in body or "errorMessage" in body):
        return f"{body.get('errorType', 'Error')}: {body.get('errorMessage', '')}"
    return text[:2000]


class _RuntimeApiServer(ThreadingHTTPServer):
    daemon_threads = True
    sandbox: Sandbox

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (socket.getfqdn), which can stall on a machine
        # with a slow resolver; the name is never used here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class _RuntimeApiHandler(BaseHTTPRequestHandler):
    """The Lambda Runtime API (2018-06-01) as the lambda_runtime crate and the AWS clients use it."""

    protocol_version = "HTTP/1.1"
    server_version = "resizer-process-executor"
    sys_version = ""
    server: _RuntimeApiServer

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        LOG.debug("runtime api %s: %s", self.server.sandbox.label, format % args)

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, body: dict) -> None:
        self._send(status, json.dumps(body).encode())

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline(65537).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _route(self) -> list[str] | None:
        path = self.path.split("?", 1)[0]
        if not path.startswith(API_PREFIX + "/"):
            return None
        return path[len(API_PREFIX) + 1 :].strip("/").split("/")

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self._route() != ["invocation", "next"]:
            self._json(HTTPStatus.NOT_FOUND, {"errorType": "NotFound", "errorMessage": f"no route {self.path}"})
            return
        event = self.server.sandbox.next_event()
        if event is None:
            self._json(
                HTTPStatus.INTERNAL_SERVER_ERROR,
                {"errorType": "Runtime.Shutdown", "errorMessage": "the execution environment is shutting down"},
            )
            self.close_connection = True
            return
        headers = {
            "Lambda-Runtime-Aws-Request-Id": event.request_id,
            "Lambda-Runtime-Deadline-Ms": str(event.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": event.function_arn,
            "Lambda-Runtime-Trace-Id": event.trace_id,
        }
        if event.client_context:
            headers["Lambda-Runtime-Client-Context"] = event.client_context
        if event.cognito_identity:
            headers["Lambda-Runtime-Cognito-Identity"] = event.cognito_identity
        self._send(HTTPStatus.OK, event.body, headers)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self._read_body()
        route = self._route()
        sandbox = self.server.sandbox
        error_type = self.headers.get("Lambda-Runtime-Function-Error-Type") or "Unhandled"
        if route == ["init", "error"]:
            payload = body or json.dumps({"errorType": error_type, "errorMessage": ""}).encode()
            if sandbox.post_init_error(payload):
                self._json(HTTPStatus.ACCEPTED, {"status": "OK"})
            else:
                self._json(HTTPStatus.FORBIDDEN, {"errorType": "InvalidStateTransition", "errorMessage": "init is over"})
            return
        if route and len(route) == 3 and route[0] == "invocation" and route[2] in ("response", "error"):
            kind = route[2]
            payload = body
            if kind == "error" and not payload:
                payload = json.dumps({"errorType": error_type, "errorMessage": ""}).encode()
            if sandbox.post_result(route[1], kind, payload):
                self._json(HTTPStatus.ACCEPTED, {"status": "OK"})
            else:
                self._json(
                    HTTPStatus.BAD_REQUEST,
                    {"errorType": "InvalidRequestID", "errorMessage": f"no invocation {route[1]} in flight"},
                )
            return
        self._json(HTTPStatus.NOT_FOUND, {"errorType": "NotFound", "errorMessage": f"no route {self.path}"})
