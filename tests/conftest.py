"""Shared fixtures: small synthetic MNIST-shaped data (the real data is only used end to end)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_split


@pytest.fixture
def small_mnist() -> dict[str, np.ndarray]:
    """The four MNIST arrays in miniature: 200 train and 50 test images."""
    train, test = make_split(200, seed=1), make_split(50, seed=2)
    return {
        "train_images": train.images,
        "train_labels": train.labels,
        "test_images": test.images,
        "test_labels": test.labels,
    }
