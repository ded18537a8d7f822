"""Per-epoch training checkpoints, so a killed train stage continues where it stopped.

A checkpoint lives outside the stage's outputs (DVC deletes those before rerunning a stage), in a
git-ignored folder of the main repository, named by a key over everything that defines the
training: the params it reads, the digest of its data, its code and the torch version. A
checkpoint of other params, data or code is never resumed. Each is written atomically (write,
fsync, rename), so a kill mid-write leaves the previous one, and removed once the stage's outputs
are complete.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import torch

from mnist_ae.model.progress import Progress
from mnist_ae.plumbing.digests import sha256_bytes, sha256_file, sha256_json
from mnist_ae.plumbing.errors import PipelineError
from mnist_ae.plumbing.outputs import atomic_path

FORMAT = 2
# A checkpoint file: this line, the SHA-256 of the payload and a newline, the payload
# (torch.save's zip). The digest catches what torch.load does not: it skips the tensors' CRCs.
MAGIC = b"mnist-ae training checkpoint 2\n"
_DIGEST_END = len(MAGIC) + 64


def code_digest() -> str:
    """The digest of the code that defines the training: the source of every mnist_ae module this
    process has loaded, by module name, and of the stage script."""
    sources = {}
    if sys.argv and sys.argv[0].endswith(".py"):
        sources["stage script"] = sha256_file(sys.argv[0])
    for name, module in sorted(sys.modules.items()):
        if (name == "mnist_ae" or name.startswith("mnist_ae.")) and getattr(
            module, "__file__", None
        ):
            sources[name] = sha256_file(module.__file__)
    return sha256_json(sources)


def checkpoint_key(params: Mapping[str, Any], data_digest: str, code: str) -> str:
    defined_by = {
        "params": dict(params),
        "data": data_digest,
        "code": code,
        "torch": torch.__version__,
        "format": FORMAT,
    }
    return sha256_json(defined_by)[:32]


class CheckpointBusy(PipelineError, RuntimeError):
    """Another process is training with exactly the same params, data and code."""


class TrainingCheckpoint:
    """The checkpoint of one training (`key`) in `folder`; a lock file beside it is held while a
    process trains."""

    def __init__(self, folder: Path, key: str) -> None:
        self.folder, self.key = Path(folder), key
        self.path = self.folder / f"{key}.pt"
        self.lock_path = self.folder / f"{key}.lock"

    @contextlib.contextmanager
    def _lock(self) -> Iterator[IO[bytes] | None]:
        """The lock, or None when another process holds it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a+b") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield None
                return
            try:
                yield lock
            finally:
                self.lock_path.unlink(missing_ok=True)

    @contextlib.contextmanager
    def locked(self) -> Iterator[TrainingCheckpoint]:
        """Held while this process trains; a second training of the same key is refused."""
        with self._lock() as lock:
            if lock is None:
                raise CheckpointBusy(
                    f"another training with the same params, data and code is running (it "
                    f"holds {self.lock_path}); let it finish, its outputs will be the same"
                )
            yield self

    def load(self) -> tuple[Progress, str | None] | None:
        """The saved progress and its MLflow run id, or None. A damaged checkpoint is removed
        with a warning: training then starts over."""
        if not self.path.is_file():
            return None
        try:
            data = self.path.read_bytes()
            payload = data[_DIGEST_END + 1 :]
            digest = data[len(MAGIC) : _DIGEST_END].decode("ascii", "replace")
            if not data.startswith(MAGIC) or sha256_bytes(payload) != digest:
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
        """Replace the checkpoint atomically and durably."""
        buffer = io.BytesIO()
        saved = {"format": FORMAT, "key": self.key, "run_id": run_id}
        torch.save(saved | {"progress": progress.as_dict()}, buffer)
        payload = buffer.getvalue()
        with atomic_path(self.path) as tmp:
            tmp.write_bytes(MAGIC + sha256_bytes(payload).encode() + b"\n" + payload)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def discard_if_idle(self) -> bool:
        """Remove the checkpoint unless a process is training with it; True if one was removed.
        For a training whose outputs exist already (DVC restored them from its run-cache)."""
        if not (self.path.exists() or self.lock_path.exists()):
            return False
        with self._lock() as lock:
            if lock is None:
                return False
            existed = self.path.exists()
            self.remove()
        return existed
