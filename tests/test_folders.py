"""Folders the stack makes for another account: made from nothing under any umask with the mode
each level needs, never through a link that another account could have planted, and removed
without following a link inside them."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from mnist_ae.stack.folders import Account, Folder
from mnist_ae.stack.processes import StackError

AS_ROOT = os.geteuid() == 0
ME = Account.current()


def mode(path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_missing_levels_are_made_with_their_modes_whatever_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        with (
            Folder.reach(tmp_path / "a" / "b", ME) as above,
            above.child("clusters", 0o711, Account.current()),
        ):
            pass
    finally:
        os.umask(old)
    assert mode(tmp_path / "a") == mode(tmp_path / "a" / "b") == 0o755
    assert mode(tmp_path / "a" / "b" / "clusters") == 0o711


def test_an_existing_folder_of_the_caller_gets_the_mode_it_needs(tmp_path):
    (tmp_path / "clusters").mkdir(mode=0o700)  # as an earlier version left it
    with Folder.reach(tmp_path, ME) as above, above.child("clusters", 0o711, Account.current()):
        pass
    assert mode(tmp_path / "clusters") == 0o711


def test_a_link_where_others_can_write_is_refused_and_not_followed(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # like a home another account can change
    target = tmp_path / "target"
    target.mkdir()
    (shared / "clusters").symlink_to(target)
    with pytest.raises(StackError) as refused:
        Folder.reach(shared / "clusters" / "x", ME)
    assert str(refused.value) == (
        f"{shared / 'clusters'}: a symbolic link in a folder that other accounts can change; the "
        "stack follows no link and uses no folder it did not make here: move it aside, then run "
        "`stack up` again"
    )
    assert list(target.iterdir()) == []


def test_a_link_in_a_folder_only_the_caller_can_change_is_followed(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    with Folder.reach(tmp_path / "alias" / "made", ME):
        pass
    assert (tmp_path / "real" / "made").is_dir()


def test_a_file_or_a_link_where_a_folder_should_be_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    (tmp_path / "link").symlink_to(tmp_path)
    for name, what in (("file", "not a folder"), ("link", "a symbolic link where the stack")):
        with Folder.reach(tmp_path, ME) as above, pytest.raises(StackError) as refused:
            above.child(name, 0o700, Account.current())
        assert str(refused.value).startswith(f"{tmp_path / name}: {what}")


@pytest.mark.skipif(not AS_ROOT, reason="only root can make a folder of another account")
def test_a_folder_another_account_made_is_refused_and_left_as_it_was(tmp_path):
    other = Account.named("nobody")
    (tmp_path / "clusters").mkdir()
    (tmp_path / "clusters").chmod(0o755)  # whatever the umask
    os.chown(tmp_path / "clusters", other.uid, other.gid)
    with Folder.reach(tmp_path, ME) as above, pytest.raises(StackError) as refused:
        above.child("clusters", 0o711, Account.current())
    assert str(refused.value).startswith(f"{tmp_path / 'clusters'}: owned by nobody, not root;")
    assert (tmp_path / "clusters").stat().st_uid == other.uid
    assert mode(tmp_path / "clusters") == 0o755


def test_a_secret_is_its_reader_s_alone_and_replaces_no_link_target(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("kept")
    (tmp_path / "holder").mkdir()
    (tmp_path / "holder" / "x.pw").symlink_to(victim)  # a stale name: replaced, not followed
    with Folder.reach(tmp_path / "holder", ME) as holder:
        written = holder.write_secret("x.pw", "secret\n", Account.current())
    assert written.read_text() == "secret\n" and mode(written) == 0o600
    assert victim.read_text() == "kept"


def test_removing_a_tree_follows_no_link_in_it(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("kept")
    cluster = tmp_path / "holder" / "cluster"
    (cluster / "data" / "base").mkdir(parents=True)
    (cluster / "data" / "PG_VERSION").write_text("15\n")
    (cluster / "data" / "linked").symlink_to(outside)
    (cluster / "log").symlink_to(outside / "keep.txt")
    with Folder.reach(tmp_path / "holder", ME) as holder:
        holder.remove_tree("cluster")
        holder.remove_tree("cluster")  # gone already: nothing to do
    assert not cluster.exists() and (outside / "keep.txt").read_text() == "kept"


@pytest.mark.skipif(not AS_ROOT, reason="root passes through every folder")
def test_a_folder_the_running_account_cannot_pass_through_is_named():
    private = Path(tempfile.mkdtemp(dir="/tmp"))  # 0700, as /root is
    try:
        with pytest.raises(StackError) as refused:
            Folder.reach(private / "clusters", Account.named("nobody"))
        assert str(refused.value) == (
            f"{private}: the nobody account cannot pass through it (owner root, mode 0700); "
            "choose a place it can reach"
        )
        assert not (private / "clusters").exists()
    finally:
        shutil.rmtree(private)
