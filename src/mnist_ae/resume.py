"""Per-epoch training checkpoints, so a killed train stage continues where it stopped.

A checkpoint lives outside the stage's outputs (DVC deletes those before rerunning a stage) in a
git-ignored folder of the main repository, named by a key over everything that defines the
training: the params it reads, the digest of its data, its code and the torch version. A
checkpoint of other params, data or code is never resumed. Each is written atomically (write,
fsync, rename) so a kill mid-write leaves the previous one, and removed once the stage's outputs
are complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import torch

from mnist_ae.errors import PipelineError
from mnist_ae.repo import repo_root
from mnist_ae.storage import atomic_path
from mnist_ae.training import Progress

FORMAT = 1
# A checkpoint file: this line, the SHA-256 of the payload, the payload (torch.save's zip). The
# digest catches what torch.load does not: it does not check the CRC of tensor data.
MAGIC = b"mnist-ae training checkpoint 1\n"


def code_digest() -> str:
    """SHA-256 over the source of every mnist_ae module this process has loaded and the stage
    script: the code that defines the training."""
    digest = hashlib.sha256()
    files = {Path(sys.argv[0]).resolve()} if sys.argv and sys.argv[0].endswith(".py") else set()
    for name, module in list(sys.modules.items()):
        if name == "mnist_ae" or name.startswith("mnist_ae."):
            source = getattr(module, "__file__", None)
            if source:
                files.add(Path(source).resolve())
    for path in sorted(files):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def checkpoint_key(params: Mapping[str, Any], data_digest: str, code: str) -> str:
    defined_by = {
        "params": dict(params),
        "data": data_digest,
        "code": code,
        "torch": torch.__version__,
        "format": FORMAT,
    }
    return hashlib.sha256(json.dumps(defined_by, sort_keys=True).encode()).hexdigest()[:32]


class CheckpointBusy(PipelineError, RuntimeError):
    """Another process is training with exactly the same params, data and code."""


class Checkpoints:
    """The checkpoint of one training (`key`) in `folder`, locked while this process trains."""

    def __init__(self, folder: str | Path, key: str) -> None:
        folder = Path(folder)
        self.folder = folder if folder.is_absolute() else repo_root() / folder
        self.key = key
        self.path = self.folder / f"{key}.pt"
        self._lock: IO[bytes] | None = None

    @contextlib.contextmanager
    def locked(self) -> Iterator[Checkpoints]:
        self.folder.mkdir(parents=True, exist_ok=True)
        lock_path = self.folder / f"{self.key}.lock"
        with open(lock_path, "a+b") as lock:
            try:
                import fcntl

                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except ImportError:  # Windows: no advisory locks, no protection
                pass
            except BlockingIOError:
                raise CheckpointBusy(
                    f"another training with the same params, data and code is running (it "
                    f"holds {lock_path}); let it finish, its outputs will be the same"
                ) from None
            self._lock = lock
            try:
                yield self
            finally:
                self._lock = None
                lock_path.unlink(missing_ok=True)

    def load(self) -> tuple[Progress, str | None] | None:
        """The saved progress and its MLflow run id, or None. A damaged checkpoint is removed
        with a warning: training then starts over."""
        if not self.path.is_file():
            return None
        try:
            data = self.path.read_bytes()
            digest, payload = data[len(MAGIC) : len(MAGIC) + 32], data[len(MAGIC) + 32 :]
            if not data.startswith(MAGIC) or hashlib.sha256(payload).digest() != digest:
                raise ValueError("its SHA-256 does not match: truncated or altered")
            saved = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
            if saved.get("format") != FORMAT or saved.get("key") != self.key:
                raise ValueError("written for another training")
            return Progress.from_dict(saved["progress"]), saved.get("run_id")
        except Exception as error:  # truncated, bit-flipped, foreign: all unusable alike
            reason = f"{type(error).__name__}: {error}".splitlines()[0][:200]
            print(
                f"warning: checkpoint {self.path} is unusable ({reason}); discarded, "
                "training starts over"
            )
            self.path.unlink(missing_ok=True)
            return None

    def save(self, progress: Progress, run_id: str | None) -> None:
        """Atomically replace the checkpoint; durable (fsync) before the rename."""
        buffer = io.BytesIO()
        saved = {"format": FORMAT, "key": self.key, "run_id": run_id}
        torch.save(saved | {"progress": progress.as_dict()}, buffer)
        payload = buffer.getvalue()
        with atomic_path(self.path) as tmp, open(tmp, "wb") as handle:
            handle.write(MAGIC + hashlib.sha256(payload).digest() + payload)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(OSError):  # make the rename itself durable
            directory = os.open(self.folder, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
