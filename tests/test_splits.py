import numpy as np
import pytest
from helpers import make_split

from mnist_ae.data.idx import IDX_FILES, encode_idx
from mnist_ae.data.splits import (
    DatasetError,
    Split,
    first_of_each_digit,
    load_split,
    read_raw,
    save_split,
    stratified_subset,
    train_val_split,
)


def class_counts(split: Split) -> np.ndarray:
    return np.bincount(split.labels, minlength=10)


def test_split_is_stratified_disjoint_and_complete():
    whole = make_split(1000)
    train, val = train_val_split(whole, 0.2, seed=0)
    assert len(val) == 200 and len(train) == 800
    assert np.array_equal(class_counts(val), np.full(10, 20))  # 10% per digit, exactly
    rows = {bytes(image) for image in whole.images}
    assert {bytes(i) for i in train.images} | {bytes(i) for i in val.images} == rows
    assert not {bytes(i) for i in train.images} & {bytes(i) for i in val.images}


def test_split_is_seeded():
    whole = make_split(500)
    first, again = train_val_split(whole, 0.1, 7), train_val_split(whole, 0.1, 7)
    other = train_val_split(whole, 0.1, 8)
    assert np.array_equal(first[1].images, again[1].images)
    assert not np.array_equal(first[1].images, other[1].images)


def test_subset_keeps_digit_proportions_and_is_seeded():
    whole = make_split(1000)
    subset = stratified_subset(whole, 300, seed=0)
    assert len(subset) == 300 and np.array_equal(class_counts(subset), np.full(10, 30))
    assert np.array_equal(subset.images, stratified_subset(whole, 300, seed=0).images)
    assert stratified_subset(whole, 5000, seed=0) is whole


def write_raw(directory, train: Split, test: Split) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train_images": train.images,
        "train_labels": train.labels,
        "test_images": test.images,
        "test_labels": test.labels,
    }
    for name, filename in IDX_FILES.items():
        (directory / filename).write_bytes(encode_idx(arrays[name]))


def test_read_raw_validates_and_names_the_bad_file(tmp_path):
    train, test = make_split(40), make_split(20)
    write_raw(tmp_path, train, test)
    got_train, got_test = read_raw(tmp_path)
    assert np.array_equal(got_train.images, train.images) and np.array_equal(
        got_test.labels, test.labels
    )

    write_raw(tmp_path, train, Split(test.images, np.full(20, 10, np.uint8)))
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte: label 10 is outside 0-9"):
        read_raw(tmp_path)
    write_raw(tmp_path, train, Split(test.images[:19], test.labels))
    with pytest.raises(DatasetError, match=r"19 images but .* 20 labels"):
        read_raw(tmp_path)
    write_raw(tmp_path, Split(np.zeros((40, 32, 32), np.uint8), train.labels), test)
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte: expected N x 28 x 28"):
        read_raw(tmp_path)
    (tmp_path / IDX_FILES["train_labels"]).unlink()
    with pytest.raises(DatasetError, match="train-labels-idx1-ubyte: missing"):
        read_raw(tmp_path)


def test_split_files_round_trip_and_bad_ones_are_named(tmp_path):
    split = make_split(30)
    save_split(tmp_path / "train.npz", split)
    loaded = load_split(tmp_path / "train.npz")
    assert np.array_equal(loaded.images, split.images) and loaded.labels.dtype == np.uint8
    np.savez(tmp_path / "bad.npz", images=split.images.astype(np.float32), labels=split.labels)
    with pytest.raises(DatasetError, match=r"bad.npz: expected uint8"):
        load_split(tmp_path / "bad.npz")


def test_first_of_each_digit():
    labels = np.array([3, 1, 3, 0, 2, 9, 4, 5, 6, 7, 8, 1], np.uint8)
    assert list(first_of_each_digit(labels)) == [3, 1, 4, 0, 6, 7, 8, 9, 10, 5]
