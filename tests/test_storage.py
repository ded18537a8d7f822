import os
import subprocess
import sys

import numpy as np
import pytest

from mnist_ae.storage import DamagedFileError, atomic_path, load_arrays, publish_files, save_arrays


def test_saved_arrays_load_back_and_rewrite_byte_identically(tmp_path):
    arrays = {
        "images": np.arange(784, dtype=np.uint8).reshape(1, 28, 28),
        "labels": np.array([3], np.uint8),
    }
    save_arrays(tmp_path / "a.npz", **arrays)
    save_arrays(tmp_path / "b.npz", **arrays)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    loaded = load_arrays(tmp_path / "a.npz")
    assert set(loaded) == set(arrays) and all(
        np.array_equal(loaded[k], v) for k, v in arrays.items()
    )


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


def test_publish_files_keeps_other_files_and_is_all_or_nothing(tmp_path):
    (tmp_path / ".gitignore").write_text("/figure.png\n")
    with publish_files(tmp_path) as staging:
        (staging / "metrics.json").write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".gitignore", "metrics.json"]
    with pytest.raises(RuntimeError), publish_files(tmp_path) as staging:
        (staging / "other.csv").write_text("half")
        raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".gitignore", "metrics.json"]


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


def test_leftovers_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale_dir = tmp_path / f".out.tmp-{dead.pid}-abc"
    stale_dir.mkdir()
    (stale_dir / "half.npz").write_text("x")
    live = tmp_path / f".out.tmp-{os.getpid()}-def"
    live.write_text("being written by a running stage")
    with atomic_path(tmp_path / "out", is_dir=True) as tmp:
        (tmp / "done").write_text("x")
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "out"]
    staging = tmp_path / "reports" / f".staging-{dead.pid}-xyz"
    staging.mkdir(parents=True)
    with publish_files(tmp_path / "reports") as out:
        (out / "metrics.json").write_text("{}")
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["metrics.json"]
