"""Writing outputs: reruns give byte-identical files, and a failure leaves nothing half-written."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

# numpy's savez stamps the current time into the zip; a fixed stamp keeps files byte-identical.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@contextlib.contextmanager
def atomic_path(target: str | Path, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `target`; it replaces `target` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}.tmp-"
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, dir=target.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        if not is_dir:
            tmp.chmod(0o644)
        tmp.replace(target)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def publish_files(directory: str | Path) -> Iterator[Path]:
    """Yield a temporary folder; only if the block succeeds, move each file in it into
    `directory`, leaving other files there (DVC's .gitignore) alone."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=directory))
    try:
        yield staging
        for item in sorted(staging.iterdir()):
            item.chmod(0o644)
            item.replace(directory / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def save_arrays(path: str | Path, **arrays: np.ndarray) -> None:
    """Write arrays as a compressed .npz that np.load reads, with no timestamps inside. Deflate
    level 1: on noisy images level 6 takes 5x as long for files only 2% smaller."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, buffer.getvalue(), compresslevel=1)


def load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Read every array of an .npz written by save_arrays (no pickles allowed)."""
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def write_csv(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Write rows (dicts with the same keys) as CSV with a header: DVC plot data."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON with sorted keys and a final newline, so diffs and hashes stay stable."""
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
