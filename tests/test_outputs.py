"""Outputs written all or nothing, durably: a process killed at every step of a write leaves the
old output or the new one, and the next write cleans up what the killed one left."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mnist_ae.data.arrays import DamagedFileError, load_arrays, save_arrays
from mnist_ae.plumbing.outputs import atomic_path, publish_files
from mnist_ae.plumbing.processes import ProcessStamp


def test_saved_arrays_load_back_and_rewrite_byte_identically(tmp_path):
    arrays = {
        "images": np.arange(784, dtype=np.uint8).reshape(1, 28, 28),
        "labels": np.array([3], np.uint8),
    }
    save_arrays(tmp_path / "a.npz", **arrays)
    save_arrays(tmp_path / "b.npz", **arrays)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    loaded = load_arrays(tmp_path / "a.npz")
    assert set(loaded) == set(arrays)
    assert all(np.array_equal(loaded[k], v) for k, v in arrays.items())


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty"])
def test_a_damaged_archive_is_named_not_a_zip_traceback(tmp_path, damage):
    path = tmp_path / "split.npz"
    save_arrays(path, images=np.arange(28 * 28 * 50, dtype=np.uint32).astype(np.uint8))
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[len(data) // 2] ^= 0x10  # inside the deflate stream: a CRC or zlib error
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    with pytest.raises(DamagedFileError, match=f"{path}: damaged"):
        load_arrays(path)


@pytest.mark.parametrize("is_dir", [False, True])
def test_atomic_path_leaves_nothing_behind_on_failure(tmp_path, is_dir):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError), atomic_path(target, is_dir=is_dir) as tmp:
        (tmp / "half" if is_dir else tmp).write_text("partial")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_replaces_an_old_directory(tmp_path):
    target = tmp_path / "out"
    (target / "old").mkdir(parents=True)
    with atomic_path(target, is_dir=True) as tmp:
        (tmp / "new").write_text("x")
    assert [p.name for p in target.iterdir()] == ["new"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o755)


def test_publish_files_keeps_other_files_and_is_all_or_nothing(tmp_path):
    (tmp_path / ".gitignore").write_text("/figure.png\n")
    with publish_files(tmp_path) as staging:
        (staging / "metrics.json").write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".gitignore", "metrics.json"]
    with pytest.raises(RuntimeError), publish_files(tmp_path) as staging:
        (staging / "other.csv").write_text("half")
        raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".gitignore", "metrics.json"]


def dead_stamp() -> ProcessStamp:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    stamp = ProcessStamp.of(dead.pid)
    dead.wait()
    return stamp


def test_leftovers_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    stale_dir = tmp_path / f".out.tmp-{dead_stamp()}-abc"
    stale_dir.mkdir()
    (stale_dir / "half.npz").write_text("x")
    # the id of this process, but another start time: the id was reused, the writer is gone
    reused = ProcessStamp(os.getpid(), ProcessStamp.current().started - 100)
    (tmp_path / f".out.tmp-{reused}-ghi").write_text("left by a process long gone")
    live = tmp_path / f".out.tmp-{ProcessStamp.current()}-def"
    live.write_text("being written by a running stage")
    with atomic_path(tmp_path / "out", is_dir=True) as tmp:
        (tmp / "done").write_text("x")
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "out"]
    staging = tmp_path / "reports" / f".staging-{dead_stamp()}-xyz"
    staging.mkdir(parents=True)
    with publish_files(tmp_path / "reports") as out:
        (out / "metrics.json").write_text("{}")
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["metrics.json"]


# A writer that SIGKILLs itself at its n-th step: every call that changes or syncs the disk (a
# rename, a swap, an fsync, a removal), counted in the process that writes.
WRITER = textwrap.dedent("""
    import os, shutil, signal, sys
    from pathlib import Path
    from mnist_ae.plumbing import outputs

    target, kill_at, swap = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "swap"
    steps = 0

    def counted(function):
        def step(*args, **kwargs):
            global steps
            steps += 1
            if steps == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return function(*args, **kwargs)
        return step

    os.replace, os.fsync, shutil.rmtree = map(counted, (os.replace, os.fsync, shutil.rmtree))
    outputs.swap = counted(outputs.swap if swap else lambda a, b: False)
    with outputs.atomic_path(target, is_dir=sys.argv[4] == "dir") as tmp:
        if sys.argv[4] == "dir":
            (tmp / "a").write_text("new")
            (tmp / "b").write_text("new")
        else:
            tmp.write_text("new")
""")


def content(target) -> str:
    if target.is_dir():
        return "+".join(sorted(f"{p.name}={p.read_text()}" for p in target.iterdir()))
    return target.read_text() if target.exists() else "missing"


@pytest.mark.parametrize(
    ("kind", "swap"), [("dir", "swap"), ("dir", "rename twice"), ("file", "-")]
)
def test_a_kill_at_every_step_of_a_write_leaves_the_old_or_the_new_output(tmp_path, kind, swap):
    old, new = ("a=old+b=old", "a=new+b=new") if kind == "dir" else ("old", "new")
    outcomes = []
    for kill_at in range(1, 50):
        target = tmp_path / f"kill-{kill_at}" / "out"
        if kind == "dir":
            target.mkdir(parents=True)
            for name in ("a", "b"):
                (target / name).write_text("old")
        else:
            target.parent.mkdir()
            target.write_text("old")
        done = subprocess.run(
            [sys.executable, "-c", WRITER, str(target), str(kill_at), swap, kind], timeout=60
        )
        if done.returncode == 0:
            assert content(target) == new
            break
        assert done.returncode == -signal.SIGKILL
        left = content(target)
        if swap == "rename twice" and left == "missing":
            left = "moved aside"  # killed between the two renames: the next write restores it
        else:
            assert left in (old, new), f"killed at step {kill_at}: {left}"
        outcomes.append(left)
        # The next write of the output first restores or removes what the killed one left.
        with atomic_path(target, is_dir=kind == "dir") as tmp:
            assert content(target) in (old, new)
            (tmp / "c" if kind == "dir" else tmp).write_text("next")
        assert os.listdir(target.parent) == ["out"]
    else:
        pytest.fail("the writer never finished")
    assert old in outcomes and new in outcomes  # the kills fell both before and after the switch
    if swap == "rename twice":
        assert "moved aside" in outcomes
