"""Seeded Gaussian noise, x + std * N(0, 1) clipped to [0, 1], kept as 8-bit images."""

from __future__ import annotations

import numpy as np
import torch

from mnist_ae.data.pixels import to_uint8, to_unit

# Each split, and each other use of noise, gets its own stream so adding one never changes
# the others' noise.
_SPLIT_STREAMS = {"train": 0, "val": 1, "test": 2, "calibration": 3, "not-a-digit": 4}


def add_gaussian_noise(images: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """Noisy copy of uint8 images: scale to [0, 1], add noise, clip, round back to uint8."""
    noise = torch.from_numpy(rng.standard_normal(images.shape, dtype=np.float32))
    return to_uint8(to_unit(images) + std * noise).numpy()


def split_rng(seed: int, split: str, *part: int) -> np.random.Generator:
    """The generator for one split (or one part of another use: `part`), derived from the
    shared seed."""
    return np.random.default_rng([seed, _SPLIT_STREAMS[split], *part])
