"""Processes the stack starts: ports, readiness, and stopping exactly the process ids it started."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from mnist_ae.plumbing.errors import PipelineError
from mnist_ae.plumbing.processes import ProcessStamp

LOOPBACK = "127.0.0.1"


class StackError(PipelineError, RuntimeError):
    """A component cannot start or stop; the message names it and says what to do."""


@dataclass(frozen=True)
class Started:
    """A process this stack started. The start time guards against a recycled process id."""

    pid: int
    create_time: float
    group: bool = False  # signal the whole process group (a server with worker processes)

    @classmethod
    def of(cls, pid: int, group: bool = False) -> Started:
        return cls(pid, ProcessStamp.of(pid).started, group)

    def as_dict(self) -> dict:
        return asdict(self)

    def running(self) -> bool:
        return ProcessStamp(self.pid, self.create_time).alive()

    def stop(self, sig: int = signal.SIGTERM, grace: float = 30.0) -> None:
        """Send `sig`, wait up to `grace` seconds, then SIGKILL what is left."""
        if not self.running():
            return
        self._signal(sig)
        if not wait_for(lambda: not self.running(), grace):
            self._signal(signal.SIGKILL)
            wait_for(lambda: not self.running(), 10.0)

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.group:
                os.killpg(self.pid, sig)  # the group we created with start_new_session
            else:
                os.kill(self.pid, sig)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(self.pid, os.WNOHANG)  # reap it if it is our child


def wait_for(check: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    """Poll `check` until it is true or `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def answers_health(url: str, context: ssl.SSLContext | None = None) -> bool:
    """Whether `url` + /health answers 200 within 2 s (a component's readiness)."""
    try:
        with urllib.request.urlopen(url + "/health", timeout=2, context=context) as answer:
            return answer.status == 200
    except OSError:
        return False


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether a server could listen on the port of `host` now. Like the servers, the probe
    allows the TIME_WAIT connections a stopped server leaves behind (SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def log_tail(path: Path, lines: int = 8) -> str:
    """The last lines of a component's log, for an error message."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(f"    {line[:200]}" for line in text[-lines:])
