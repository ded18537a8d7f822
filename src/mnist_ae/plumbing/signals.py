"""SIGTERM and SIGINT end a stage through the normal exception path (files cleaned up, the MLflow
run ended KILLED) instead of killing it mid-write; inside a critical section they wait for it."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType


class Interrupted(BaseException):
    """A SIGTERM or SIGINT asked the stage to stop. A BaseException, like KeyboardInterrupt, so
    that `except Exception` blocks do not swallow it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.detail = "nothing half-written was kept"  # a stage may say what it kept
        super().__init__(f"interrupted by {signal.Signals(signum).name}")

    @property
    def exit_status(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


_deferred: list[int] = []  # signals received inside a critical section
_depth = 0


def _handle(signum: int, _frame: FrameType | None) -> None:
    if _depth:
        _deferred.append(signum)
        return
    raise Interrupted(signum)


def install() -> None:
    """Turn SIGTERM and SIGINT into `Interrupted` for the rest of the process."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _handle)


@contextlib.contextmanager
def critical() -> Iterator[None]:
    """Steps that must not be cut in half (publishing outputs, registering a model): a signal
    that arrives meanwhile is raised when the section ends."""
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if not _depth and _deferred:
            signum = _deferred.pop(0)
            _deferred.clear()
            raise Interrupted(signum)
