"""The split files: validating the raw IDX arrays, stratified seeded splits, and the .npz contract
of data/processed and data/noisy (uint8 images N x 28 x 28 and their labels)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_ae.data.arrays import DamagedFileError, load_arrays, save_arrays
from mnist_ae.data.idx import IDX_FILES, IdxError, read_idx_folder
from mnist_ae.plumbing.errors import PipelineError

SPLITS = ("train", "val", "test")
OOD_MISSING = "UNAVAILABLE.txt"  # left by download-fashion, with the reasons, when no source served
NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28)


@dataclass(frozen=True)
class Split:
    """One split: uint8 images (N x 28 x 28) and uint8 labels (N)."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


class DatasetError(PipelineError, ValueError):
    """Input data breaks the contract; the message names the file."""


def _check_pair(images: np.ndarray, labels: np.ndarray, images_name: str, labels_name: str) -> None:
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise DatasetError(f"{images_name}: expected N x 28 x 28 images, got shape {images.shape}")
    if labels.ndim != 1:
        raise DatasetError(f"{labels_name}: expected a vector of labels, got shape {labels.shape}")
    if len(images) != len(labels):
        raise DatasetError(
            f"{images_name} has {len(images)} images but {labels_name} has {len(labels)} labels"
        )
    if len(labels) and labels.max() >= NUM_CLASSES:
        raise DatasetError(f"{labels_name}: label {int(labels.max())} is outside 0-9")


def read_raw(raw_dir: str | Path) -> tuple[Split, Split]:
    """Decode and validate the four IDX files of data/raw: (train, test)."""
    try:
        arrays = read_idx_folder(raw_dir)
    except IdxError as exc:
        raise DatasetError(f"{exc}; run the download stage first (dvc repro download)") from None
    splits = []
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        names = [str(Path(raw_dir) / IDX_FILES[f"{part}_{kind}"]) for kind in ("images", "labels")]
        _check_pair(images, labels, *names)
        splits.append(Split(images, labels))
    return splits[0], splits[1]


def _take(split: Split, indices: np.ndarray) -> Split:
    indices = np.sort(indices)  # keep the original order within each subset
    return Split(split.images[indices], split.labels[indices])


def stratified_subset(split: Split, size: int, seed: int) -> Split:
    """A seeded subset of `size` images with the digit proportions of the whole."""
    if size >= len(split):
        return split
    from sklearn.model_selection import train_test_split  # seconds to import: only preprocess

    chosen, _ = train_test_split(
        np.arange(len(split)), train_size=size, stratify=split.labels, random_state=seed
    )
    return _take(split, chosen)


def train_val_split(split: Split, val_fraction: float, seed: int) -> tuple[Split, Split]:
    """A stratified, seeded split of the training images into train and validation."""
    from sklearn.model_selection import train_test_split  # seconds to import: only preprocess

    train_idx, val_idx = train_test_split(
        np.arange(len(split)), test_size=val_fraction, stratify=split.labels, random_state=seed
    )
    return _take(split, train_idx), _take(split, val_idx)


def save_split(path: str | Path, split: Split) -> None:
    save_arrays(path, images=split.images, labels=split.labels)


def load_split(path: str | Path) -> Split:
    """Read a split and check it against the contract, naming the file if it breaks it."""
    path = Path(path)
    try:
        arrays = load_arrays(path)
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing; run the stage that writes it (dvc repro)") from None
    except (OSError, DamagedFileError) as exc:
        raise DatasetError(
            f"{exc if isinstance(exc, DamagedFileError) else f'{path}: cannot read ({exc})'}; "
            f"restore it with `dvc checkout {path.parent}` or rebuild it with `dvc repro`"
        ) from None
    if set(arrays) != {"images", "labels"}:
        raise DatasetError(f"{path}: expected arrays 'images' and 'labels', found {sorted(arrays)}")
    images, labels = arrays["images"], arrays["labels"]
    if images.dtype != np.uint8 or labels.dtype != np.uint8:
        raise DatasetError(f"{path}: expected uint8 arrays, got {images.dtype} / {labels.dtype}")
    _check_pair(images, labels, f"{path}:images", f"{path}:labels")
    return Split(images, labels)


def first_of_each_digit(labels: np.ndarray) -> np.ndarray:
    """Index of the first image of each digit 0-9: fixed columns for comparable grids."""
    found = [np.flatnonzero(labels == digit) for digit in range(NUM_CLASSES)]
    return np.array([indices[0] for indices in found if len(indices)])


def split_path(directory: str | Path, name: str) -> Path:
    return Path(directory) / f"{name}.npz"


def load_splits(directory: str | Path, names: tuple[str, ...] = SPLITS) -> dict[str, Split]:
    return {name: load_split(split_path(directory, name)) for name in names}


# (inputs, targets) of train and val, and each file read with its images
TrainingData = tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[Path, np.ndarray]]


def training_arrays(processed: Path, noisy: Path, denoise: bool, fresh_noise: bool) -> TrainingData:
    """(inputs, targets) uint8 images of train and val (noisy -> clean when denoising, else the
    same clean array twice), and each file read with its images, in a fixed order. With fresh
    noise the training inputs are drawn during training: train's pair is its clean images
    twice, and its noisy copy is neither read nor digested (validation always uses add-noise's
    fixed copy). A third pair, "calibration", is the validation split's noisy and clean images
    whatever the training takes: the not-a-digit verdict is calibrated on both."""
    pairs, sources = {}, {}
    for name in ("train", "val"):
        target_file = split_path(processed, name)
        targets = sources[target_file] = load_split(target_file).images
        input_file = split_path(noisy, name)
        if name == "val" or (denoise and not fresh_noise):
            sources[input_file] = load_split(input_file).images
        pairs[name] = (
            sources[input_file] if denoise and input_file in sources else targets,
            targets,
        )
    val_noisy = split_path(noisy, "val")
    pairs["calibration"] = (sources[val_noisy], pairs["val"][1])
    return pairs, sources
