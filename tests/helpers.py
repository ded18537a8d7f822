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


def training_progress(epoch: int):
    """A Progress after `epoch` epochs whose weights all equal `epoch` (1 MiB of them)."""
    import torch

    from mnist_ae.training import EpochResult, Progress, TrainResult

    history = [EpochResult(e, -e, -e - 0.5, 1.0) for e in range(1, epoch + 1)]
    weights = {"w": torch.full((512, 512), float(epoch))}
    result = TrainResult(history, epoch, -epoch - 0.5, 1.0 * epoch, 100 * epoch, weights)
    optimizer = {"state": {}, "param_groups": []}
    generator = torch.Generator().manual_seed(epoch).get_state()
    return Progress(epoch, weights, optimizer, None, generator, result)
