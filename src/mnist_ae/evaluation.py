"""Scoring an autoencoder on the test set: reconstruction (clean input) and denoising (noisy input)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mnist_ae.datasets import Split, to_unit
from mnist_ae.metrics import image_metrics, mse_per_digit
from mnist_ae.models import Autoencoder, reconstruct

@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, dict[str, float]]  # task -> mse, psnr, ssim, bce
    per_digit: dict[str, dict[int, float]]  # task -> digit -> mse
    outputs: dict[str, np.ndarray]  # task -> float32 N x 28 x 28 in [0, 1]


def evaluate_autoencoder(
    model: Autoencoder, clean: Split, noisy: Split, batch_size: int, device: torch.device
) -> Evaluation:
    if not np.array_equal(clean.labels, noisy.labels):
        raise ValueError("clean and noisy test splits do not hold the same images")
    target = to_unit(clean.images)
    labels = torch.from_numpy(clean.labels)
    inputs = {"reconstruction": clean.images, "denoising": noisy.images}
    outputs, metrics, per_digit = {}, {}, {}
    for task, images in inputs.items():
        outputs[task] = reconstruct(model, images, batch_size, device)
        pred = torch.from_numpy(outputs[task])
        metrics[task] = image_metrics(pred, target)
        per_digit[task] = mse_per_digit(pred, target, labels)
    return Evaluation(metrics, per_digit, outputs)

