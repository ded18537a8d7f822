"""What every component of the stack is: the ports it listens on, how to start it, whether it
answers, how to stop it."""

from __future__ import annotations

import signal
import subprocess

from mnist_ae.stack.layout import Layout
from mnist_ae.stack.processes import StackError, Started, log_tail

READY_TIMEOUT = 60.0


class Service:
    """One component: the ports it listens on, how to start it, whether it answers."""

    name: str
    ports: tuple[str, ...]
    stop_signal: int = signal.SIGTERM
    stop_grace: float = 30.0

    def missing(self) -> str | None:
        """Why this service cannot run here (a package not installed), or None."""
        return None

    def start(self, layout: Layout) -> Started:
        raise NotImplementedError

    def ready(self, layout: Layout) -> bool:
        raise NotImplementedError

    def _spawn(self, layout: Layout, command: list[str], env: dict | None = None) -> int:
        """Start a server in a session of its own (a Ctrl-C in the shell does not reach it),
        logging to its file; returns its process id."""
        layout.folder(self.name).mkdir(parents=True, exist_ok=True)
        with open(layout.log(self.name), "ab") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return process.pid

    def fail(self, layout: Layout, what: str) -> StackError:
        return StackError(
            f"{self.name} {what}; its log {layout.log(self.name)} ends:\n"
            + log_tail(layout.log(self.name))
        )
