"""Test helpers shared across modules."""

from __future__ import annotations

import numpy as np

from mnist_ae.datasets import Split


def make_split(count: int, seed: int = 0) -> Split:
    """Random uint8 'digits' with every label 0-9 present, in a shuffled order."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(count) % 10).astype(np.uint8)
    images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
    return Split(images, labels)
