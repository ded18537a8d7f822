"""Folders the stack makes outside its own folder, for an account that may not be the caller's
(PostgreSQL's cluster, run by the `postgres` account when root starts the stack).

They are made from nothing, under any umask, with the owner and mode each level needs. Every
level is opened relative to the one above it, so a path checked once cannot be swapped for
another afterwards; a symbolic link is followed only where no other account could have put it
(in a folder that only root or the caller can change). Anything that is not what it should be
is refused with one line naming it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

from mnist_ae.stack.processes import StackError

_TRAVERSE = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC  # enough to look up names in a folder
_OPEN = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC  # to change its owner, mode


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int

    @classmethod
    def named(cls, name: str) -> Account:
        entry = pwd.getpwnam(name)
        return cls(name, entry.pw_uid, entry.pw_gid)

    @classmethod
    def current(cls) -> Account:
        uid = os.geteuid()
        try:
            return cls(pwd.getpwuid(uid).pw_name, uid, os.getegid())
        except KeyError:  # an id without a name (a container's)
            return cls(str(uid), uid, os.getegid())


def _owner_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _trusted(uid: int) -> bool:
    return uid in (0, os.geteuid())


class Folder:
    """An open folder reached without following a link another account could have planted;
    what it makes and removes, it does relative to that open folder."""

    def __init__(self, descriptor: int, path: Path):
        self.descriptor, self.path = descriptor, path

    def __enter__(self) -> Folder:
        return self

    def __exit__(self, *_: object) -> None:
        os.close(self.descriptor)

    @classmethod
    def reach(cls, path: Path, passer: Account, parents_mode: int = 0o755) -> Folder:
        """`path`, level by level from `/`, each of which `passer` must be able to pass
        through; missing levels are made, the caller's with `parents_mode`."""
        if not path.is_absolute():
            raise StackError(f"{path}: the stack needs an absolute path here")
        folder = cls(os.open("/", _TRAVERSE), Path("/"))
        for name in path.parts[1:]:
            with folder:
                folder = folder._step(name, parents_mode)
            folder._check_passable(passer)
        return folder

    def _check_passable(self, account: Account) -> None:
        found = os.fstat(self.descriptor)
        if found.st_uid == account.uid:
            allowed = found.st_mode & stat.S_IXUSR
        elif found.st_gid in os.getgrouplist(account.name, account.gid):
            allowed = found.st_mode & stat.S_IXGRP
        else:
            allowed = found.st_mode & stat.S_IXOTH
        if not allowed and account.uid != 0:
            raise StackError(
                f"{self.path}: the {account.name} account cannot pass through it (owner "
                f"{_owner_name(found.st_uid)}, mode {stat.S_IMODE(found.st_mode):04o}); choose "
                "a place it can reach"
            )

    def _step(self, name: str, mode: int) -> Folder:
        path = self.path / name
        found = self._lstat(name)
        if found is None:
            return self.child(name, mode, Account.current())
        if stat.S_ISLNK(found.st_mode) and not (self._guarded() and _trusted(found.st_uid)):
            raise _refused(path, "a symbolic link in a folder that other accounts can change")
        flags = _TRAVERSE if stat.S_ISLNK(found.st_mode) else _TRAVERSE | os.O_NOFOLLOW
        return Folder(self._open(name, flags), path)

    def child(self, name: str, mode: int, owner: Account) -> Folder:
        """The folder `name` in this one, owned by `owner` with `mode`: made if missing; an
        existing one must be a folder (not a link) that `owner` owns."""
        path = self.path / name
        found = self._lstat(name)
        if found is not None and stat.S_ISLNK(found.st_mode):
            raise _refused(path, "a symbolic link where the stack makes folders")
        if found is None:
            with contextlib.suppress(FileExistsError):  # made meanwhile by another: see below
                os.mkdir(name, 0o700, dir_fd=self.descriptor)
        descriptor = self._open(name, _OPEN)
        try:
            found = os.fstat(descriptor)
            if found.st_uid not in (owner.uid, os.geteuid()):  # ours to hand over, or theirs
                raise _refused(path, f"owned by {_owner_name(found.st_uid)}, not {owner.name}")
            if found.st_uid != owner.uid:
                os.fchown(descriptor, owner.uid, owner.gid)
            if stat.S_IMODE(found.st_mode) != mode:
                os.fchmod(descriptor, mode)
        except BaseException:
            os.close(descriptor)
            raise
        return Folder(descriptor, path)

    def write_secret(self, name: str, text: str, reader: Account) -> Path:
        """A new file readable by `reader` alone (a stale one of ours is replaced)."""
        self.remove_file(name)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        descriptor = os.open(name, flags, 0o600, dir_fd=self.descriptor)
        with os.fdopen(descriptor, "w") as handle:
            os.fchown(descriptor, reader.uid, reader.gid)
            handle.write(text)
        return self.path / name

    def remove_file(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self.descriptor)  # removes a link, never what it points to

    def remove_tree(self, name: str) -> None:
        """`name` and all it holds, without following a link at any depth."""
        found = self._lstat(name)
        if found is None or not stat.S_ISDIR(found.st_mode):
            self.remove_file(name)
            return
        top = self._open(name, _OPEN)
        try:
            for _, folders, files, inside in os.fwalk(".", dir_fd=top, topdown=False):
                for entry in files + folders:
                    try:
                        os.rmdir(entry, dir_fd=inside)
                    except NotADirectoryError:  # a file, or a link to a folder
                        os.unlink(entry, dir_fd=inside)
        finally:
            os.close(top)
        os.rmdir(name, dir_fd=self.descriptor)

    def _guarded(self) -> bool:
        """Only root or the caller can add or replace names here."""
        found = os.fstat(self.descriptor)
        return _trusted(found.st_uid) and not found.st_mode & (stat.S_IWGRP | stat.S_IWOTH)

    def _lstat(self, name: str) -> os.stat_result | None:
        try:
            return os.stat(name, dir_fd=self.descriptor, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def _open(self, name: str, flags: int) -> int:
        try:
            return os.open(name, flags, dir_fd=self.descriptor)
        except OSError as error:
            if error.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            raise _refused(self.path / name, "not a folder") from None


def _refused(path: Path, what: str) -> StackError:
    return StackError(
        f"{path}: {what}; the stack follows no link and uses no folder it did not make here: "
        "move it aside, then run `stack up` again"
    )
