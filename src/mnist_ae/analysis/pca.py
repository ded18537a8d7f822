"""PCA as the linear baseline: one eigendecomposition serves every code size, and its test scores
at each."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mnist_ae.analysis.metrics import mse_psnr


@dataclass(frozen=True)
class PCA:
    """Mean and principal axes (columns, by decreasing variance) of flattened images."""

    mean: torch.Tensor
    components: torch.Tensor
    variances: torch.Tensor

    @classmethod
    def fit(cls, data: torch.Tensor) -> PCA:
        """Fit on N x D data via the D x D covariance (cheap for D = 784), in float64."""
        data = data.reshape(len(data), -1).double()
        mean = data.mean(dim=0)
        centered = data - mean
        covariance = centered.T @ centered / max(len(data) - 1, 1)
        variances, axes = torch.linalg.eigh(covariance)  # ascending order
        order = torch.argsort(variances, descending=True)
        return cls(mean, axes[:, order], variances[order].clamp_min(0))

    @property
    def dim(self) -> int:
        return self.components.shape[0]

    def encode(self, data: torch.Tensor, k: int) -> torch.Tensor:
        flat = data.reshape(len(data), -1).double()
        return (flat - self.mean) @ self.components[:, :k]

    def decode(self, codes: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        k = codes.shape[1]
        return (codes @ self.components[:, :k].T + self.mean).reshape(shape)

    def reconstruct(self, data: torch.Tensor, k: int) -> torch.Tensor:
        """Project onto the first k components and back, clipped to valid pixels [0, 1]."""
        k = min(k, self.dim)
        return self.decode(self.encode(data, k), tuple(data.shape)).clamp(0, 1).float()


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
