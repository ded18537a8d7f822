"""SHA-256, the one way the project fingerprints anything: a file, several files in order, a folder,
bytes, an array's values, a model's weights, a JSON-able value."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

_BLOCK = 1 << 20


def sha256_files(paths: Iterable[str | Path]) -> str:
    """One digest over the bytes of the files, in the order given (read in blocks)."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda handle=handle: handle.read(_BLOCK), b""):
                digest.update(block)
    return digest.hexdigest()


def sha256_file(path: str | Path) -> str:
    return sha256_files([path])


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_array(array: Any) -> str:
    """Of a numpy array's values in C order (its dtype and shape are not part of it)."""
    return sha256_bytes(array.tobytes())


def sha256_weights(state: Mapping[str, Any]) -> str:
    """Of a model's weights, by name: torch.load does not check the CRC of tensor data, so a
    flipped bit would otherwise load silently."""
    digest = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        digest.update(name.encode() + b"\0")
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def sha256_tree(folder: str | Path, leave_out: tuple[str, ...] = ()) -> str:
    """Of every file under a folder, by relative path, but those named in `leave_out` (empty
    folders do not count)."""
    root = Path(folder)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name not in leave_out)
    return sha256_json({str(p.relative_to(root)): sha256_file(p) for p in files})


def sha256_json(value: Any) -> str:
    """Of a JSON-able value, independent of the order of its keys."""
    return sha256_bytes(json.dumps(value, sort_keys=True).encode())
