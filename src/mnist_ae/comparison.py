"""Autoencoder against PCA at the same code size, on clean and noisy test input."""

from __future__ import annotations

import torch

from mnist_ae.metrics import mse_psnr
from mnist_ae.pca import PCA

PIXELS = 28 * 28


def pca_scores(
    pca: PCA, sizes: list[int], clean: torch.Tensor, noisy: torch.Tensor
) -> list[dict[str, float]]:
    """Test MSE and PSNR of PCA reconstructions (target: the clean images) for each code size.

    A size of 784 or more keeps every component: PCA is then lossless on clean input.
    """
    rows = []
    for k in sizes:
        row: dict[str, float] = {"code_size": k}
        for task, inputs in (("reconstruction", clean), ("denoising", noisy)):
            scores = mse_psnr(pca.reconstruct(inputs, k), clean)
            row.update({f"{task}_{name}": value for name, value in scores.items()})
        rows.append(row)
    return rows

