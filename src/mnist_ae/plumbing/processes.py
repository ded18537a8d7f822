"""Whether a process is still the one we knew. A process is known by its id and its start time
(psutil's create_time), so an id the system has since given to a new process is not mistaken
for the old one."""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil

_SAME_START = 0.011  # create_time is kept to 1/100 s in names and tags


@dataclass(frozen=True)
class ProcessStamp:
    pid: int
    started: float

    @classmethod
    def of(cls, pid: int) -> ProcessStamp:
        return cls(pid, psutil.Process(pid).create_time())

    @classmethod
    def current(cls) -> ProcessStamp:
        return cls.of(os.getpid())

    @classmethod
    def parse(cls, text: str) -> ProcessStamp | None:
        """Read back `str(stamp)`; None if `text` is not one."""
        pid, _, started = text.partition("-")
        try:
            return cls(int(pid), float(started))
        except ValueError:
            return None

    def __str__(self) -> str:
        return f"{self.pid}-{self.started:.2f}"

    def alive(self) -> bool:
        """Running (not a zombie waiting to be reaped) and started when we recorded."""
        try:
            process = psutil.Process(self.pid)
            return (
                process.status() != psutil.STATUS_ZOMBIE
                and abs(process.create_time() - self.started) < _SAME_START
            )
        except psutil.Error:
            return False
