"""Writing outputs: all or nothing, durable, and byte-identical on reruns.

A file is written to a temporary sibling, fsynced, and renamed over its target. A folder is
written beside its target and swapped with it in one step (Linux `renameat2` with
RENAME_EXCHANGE, macOS `renamex_np` with RENAME_SWAP), so a kill at any moment leaves either the
old output or the new one. Where the file system cannot swap (NFS, some overlays), the old folder
is moved aside first; if a kill comes between the two renames, the next write of that output puts
the old folder back before anything else. Every rename is followed by an fsync of the folder that
holds it, so what was renamed survives a power cut. Temporaries are named
`.<name>.tmp-<pid>-<start time>-<random>` (`.staging-…` for reports); the next run of a stage
removes those whose process is gone.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import errno
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mnist_ae.plumbing.processes import ProcessStamp
from mnist_ae.plumbing.signals import critical

_ASIDE = "aside"  # the old folder moved aside where the file system cannot swap
_CANNOT_SWAP = {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP}  # the file system's answer


def fsync_path(path: Path) -> None:
    """Make a file's content, or a folder's list of names, durable."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root, topdown=False):
        for name in files:
            fsync_path(Path(folder) / name)
        fsync_path(Path(folder))


def _libc_swap() -> Any:
    """The C function that exchanges two paths in one step, or None on this system."""
    libc = ctypes.CDLL(None, use_errno=True)  # the C library this process already has
    if sys.platform.startswith("linux") and hasattr(libc, "renameat2"):
        at_cwd, exchange = -100, 2  # AT_FDCWD, RENAME_EXCHANGE

        def renameat2(a: bytes, b: bytes) -> int:
            return libc.renameat2(at_cwd, a, at_cwd, b, exchange)

        return renameat2
    if sys.platform == "darwin" and hasattr(libc, "renamex_np"):
        return lambda a, b: libc.renamex_np(a, b, 2)  # RENAME_SWAP
    return None


_SWAP = _libc_swap()


def swap(a: Path, b: Path) -> bool:
    """Exchange two existing paths atomically; False where the system or file system can't."""
    if _SWAP is None:
        return False
    if _SWAP(os.fsencode(a), os.fsencode(b)) == 0:
        return True
    code = ctypes.get_errno()
    if code in _CANNOT_SWAP:
        return False
    raise OSError(code, os.strerror(code), str(b))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _stamp_of(name: str, prefix: str) -> ProcessStamp | None:
    """The process that made a temporary `<prefix><pid>-<start>-<suffix>`."""
    return ProcessStamp.parse(name[len(prefix) :].rsplit("-", 1)[0])


def remove_stale(folder: Path, prefix: str, target: Path | None = None) -> None:
    """Remove the temporaries `<prefix>…` in `folder` whose process is gone: what a killed stage
    left behind. If `target` is missing and a dead process had moved it aside, put it back."""
    if not folder.is_dir():
        return
    for leftover in sorted(folder.glob(f"{prefix}*")):
        stamp = _stamp_of(leftover.name, prefix)
        if stamp is not None and stamp.alive():
            continue
        if target is not None and leftover.name.endswith(f"-{_ASIDE}") and not target.exists():
            leftover.replace(target)
            fsync_path(folder)
        else:
            _remove(leftover)


def _temporary(folder: Path, prefix: str, is_dir: bool) -> Path:
    """A new temporary `<prefix><pid>-<start>-<random>` in `folder`."""
    stamped = f"{prefix}{ProcessStamp.current()}-"
    if is_dir:
        return Path(tempfile.mkdtemp(prefix=stamped, dir=folder))
    descriptor, name = tempfile.mkstemp(prefix=stamped, dir=folder)
    os.close(descriptor)
    return Path(name)


def _install_file(tmp: Path, target: Path, mode: int) -> None:
    tmp.chmod(mode)
    fsync_path(tmp)
    tmp.replace(target)  # atomic: the old file until this instant, then the new
    fsync_path(target.parent)


def _install_folder(tmp: Path, target: Path, prefix: str, mode: int) -> None:
    tmp.chmod(mode)
    _fsync_tree(tmp)
    if not (target.exists() or target.is_symlink()):
        tmp.replace(target)
        fsync_path(target.parent)
        return
    if swap(tmp, target):  # the new folder is the target now, the old one is at `tmp`
        fsync_path(target.parent)
        _remove(tmp)
        return
    aside = target.parent / f"{prefix}{ProcessStamp.current()}-{_ASIDE}"
    target.replace(aside)
    tmp.replace(target)
    fsync_path(target.parent)
    _remove(aside)


@contextlib.contextmanager
def atomic_path(target: str | Path, is_dir: bool = False, private: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `target` to write; it replaces `target`, durably, only if
    the block succeeds. `private`: readable by the owner only (the temporary already is)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}.tmp-"
    remove_stale(target.parent, prefix, target)
    tmp = _temporary(target.parent, prefix, is_dir)
    try:
        yield tmp
        with critical():
            if is_dir:
                _install_folder(tmp, target, prefix, 0o700 if private else 0o755)
            else:
                _install_file(tmp, target, 0o600 if private else 0o644)
    except BaseException as error:
        _remove(tmp)
        _name_output(error, target, tmp)
        raise


@contextlib.contextmanager
def publish_files(directory: str | Path) -> Iterator[Path]:
    """Yield a temporary folder; only if the block succeeds, move each file in it into
    `directory` (each one atomically and durably), leaving other files there (DVC's .gitignore)
    alone."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    remove_stale(directory, ".staging-")
    staging = _temporary(directory, ".staging-", is_dir=True)
    try:
        yield staging
        with critical():
            for item in sorted(staging.iterdir()):
                item.chmod(0o644)
                fsync_path(item)
                item.replace(directory / item.name)
            fsync_path(directory)
    except BaseException as error:
        _name_output(error, directory, staging)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _name_output(error: BaseException, output: Path, tmp: Path) -> None:
    """A write that failed (a full disk) names the output it was for, not a temporary name
    (or none: zipfile and PNG encoders raise OSError without a file name)."""
    if not isinstance(error, OSError):
        return
    if error.filename is None:
        error.filename = str(output)
    elif str(error.filename).startswith(str(tmp)):
        error.filename = str(output) + str(error.filename)[len(str(tmp)) :]


def write_private(path: str | Path, text: str) -> None:
    """Create or replace a file only its owner can read (secrets, keys), atomically and durably:
    its content is never in a file anyone else could open."""
    with atomic_path(path, private=True) as tmp:
        tmp.write_text(text)


def write_csv(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Write rows (dicts with the same keys) as CSV with a header: DVC plot data."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON with sorted keys and a final newline, so diffs and hashes stay stable."""
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
