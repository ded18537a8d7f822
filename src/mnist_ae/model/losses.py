"""The reconstruction losses a training can minimise, and the error when one diverges. Imports only
torch."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mnist_ae.data.pixels import per_image_mse, psnr
from mnist_ae.plumbing.errors import PipelineError


def reconstruction_loss(logits: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Mean per-pixel loss; BCE works on logits, which is stable (and safe under autocast)."""
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits, target)
    if kind == "mse":
        return F.mse_loss(torch.sigmoid(logits), target)
    if kind == "l1":
        return F.l1_loss(torch.sigmoid(logits), target)
    if kind == "psnr":  # minus the mean per-image PSNR: the quantity the evaluation reports
        return -psnr(per_image_mse(torch.sigmoid(logits), target)).mean()
    raise ValueError(f"unknown loss {kind!r} (expected bce, mse, l1 or psnr)")


class TrainingDiverged(PipelineError, FloatingPointError):
    """A loss became NaN or infinite: the learning rate is too high for this network."""

    def __init__(self, epoch: int, epochs: int, which: str, value: float, lr: float) -> None:
        super().__init__(
            f"{which} loss is {value} at epoch {epoch} of {epochs}: training diverged; lower "
            f"train.lr (now {lr}), e.g. `dvc exp run -S train.lr={lr / 2:g}`"
        )
