import numpy as np
import pytest

from mnist_ae.storage import atomic_path, load_arrays, publish_files, save_arrays


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
