"""What every component of the stack is: the ports it listens on (and where), how to start it,
how to configure it once it runs, whether it answers, how to stop it."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from mnist_ae.stack.layout import Layout
from mnist_ae.stack.processes import LOOPBACK, StackError, Started, log_tail

READY_TIMEOUT = 60.0


class Service:
    name: str
    ports: tuple[str, ...]  # names in PORT_OFFSETS
    public: tuple[str, ...] = ()  # those of `ports` it serves on a network address too
    stop_signal: int = signal.SIGTERM
    stop_grace: float = 30.0

    def wanted(self, layout: Layout) -> bool:
        """Whether this stack runs it (the gateway: on a network address only)."""
        return True

    def missing(self) -> str | None:
        """Why this service cannot run here (a package not installed), or None."""
        return None

    def addresses(self, layout: Layout) -> list[tuple[str, int, str]]:
        """(address, port, port name) of every socket it will listen on."""
        ports = layout.ports()
        found = [(LOOPBACK, ports[name], name) for name in self.ports]
        if layout.networked():
            found += [(layout.host(), ports[name], name) for name in self.public]
        return found

    def start(self, layout: Layout) -> Started:
        """Start the process; it may not answer yet."""
        raise NotImplementedError

    def configure(self, layout: Layout) -> None:
        """Once it answers: what it needs before the next component starts (databases,
        buckets, roles)."""

    def ready(self, layout: Layout) -> bool:
        raise NotImplementedError

    def log(self, layout: Layout) -> Path:
        return layout.log(self.name)

    def private_tmp(self, layout: Layout) -> Path:
        """A TMPDIR of its own in its folder, so its temporary files stay in the stack folder."""
        folder = layout.folder(self.name) / "tmp"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return folder

    def leftovers(self, layout: Layout) -> list[Path]:
        """Files it leaves outside the stack folder once stopped, for `down` to remove."""
        return []

    def _spawn(self, layout: Layout, command: list[str], env: dict, cwd: Path | None = None) -> int:
        """Start a server in a session of its own (a Ctrl-C in the shell does not reach it),
        with only the environment it is given, files it creates readable by their owner only,
        logging to its file; returns its process id."""
        layout.folder(self.name).mkdir(parents=True, exist_ok=True)
        with open(self.log(layout), "ab") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                umask=0o077,
            )
        return process.pid

    def fail(self, layout: Layout, what: str) -> StackError:
        return StackError(
            f"{self.name} {what}; its log {self.log(layout)} ends:\n" + log_tail(self.log(layout))
        )
