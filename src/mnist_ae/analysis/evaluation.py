"""Scoring an autoencoder on the test set: reconstruction (clean input), denoising (noisy input)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mnist_ae.analysis import figures
from mnist_ae.analysis.metrics import image_metrics, mse_per_digit
from mnist_ae.analysis.tasks import TASKS
from mnist_ae.data.pixels import per_image_mse, to_model_input, to_unit
from mnist_ae.data.splits import DatasetError, Split, first_of_each_digit
from mnist_ae.model.networks import Autoencoder
from mnist_ae.plumbing.outputs import write_csv, write_json


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, dict[str, float]]  # task -> mse, psnr, ssim, bce
    per_digit: dict[str, dict[int, float]]  # task -> digit -> mse
    outputs: dict[str, np.ndarray]  # task -> float32 N x 28 x 28 in [0, 1]

    def flat_metrics(self, prefix: str = "test") -> dict[str, float]:
        """{"test_denoising_psnr": ..., "test_denoising_mse_digit_3": ...}: MLflow's names."""
        flat = {f"{prefix}_{t}_{k}": v for t in TASKS for k, v in self.metrics[t].items()}
        flat |= {
            f"{prefix}_{t}_mse_digit_{d}": v for t in TASKS for d, v in self.per_digit[t].items()
        }
        return flat


@torch.inference_mode()
def batched(
    function: Callable[[torch.Tensor], torch.Tensor],
    images: np.ndarray,
    batch_size: int,
    device: torch.device,
) -> torch.Tensor:
    """`function` of uint8 images (scaled to [0, 1] on `device`) in batches, gathered on the CPU."""
    source = torch.from_numpy(images).to(device)
    outputs = [
        function(to_model_input(source[i : i + batch_size])).float().cpu()
        for i in range(0, len(source), batch_size)
    ]
    return torch.cat(outputs)


def reconstruct(
    model: Autoencoder, images: np.ndarray, batch_size: int, device: torch.device
) -> np.ndarray:
    """Model output for uint8 images, batched on `device`: float32 N x 28 x 28 in [0, 1]."""
    model.eval()
    return batched(model, images, batch_size, device).squeeze(1).numpy()


def evaluate_autoencoder(
    model: Autoencoder, clean: Split, noisy: Split, batch_size: int, device: torch.device
) -> Evaluation:
    if not np.array_equal(clean.labels, noisy.labels):
        raise DatasetError(
            "the clean and noisy test splits do not hold the same images (their labels differ): "
            "rerun add-noise: dvc repro --force add-noise"
        )
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


def save_report(
    directory: Path, result: Evaluation, clean: Split, noisy: Split, extra: dict[str, Any]
) -> None:
    """metrics.json (DVC metrics), mse_per_digit.csv (DVC plot) and .png (bars), the
    reconstruction grid, whose columns are the first test image of each digit so grids of
    experiments compare, and the grid of the test images worst denoised."""
    write_json(directory / "metrics.json", {**result.metrics, **extra})
    digits = sorted(result.per_digit["reconstruction"])
    write_csv(
        directory / "mse_per_digit.csv",
        [{"digit": d, **{f"{t}_mse": result.per_digit[t][d] for t in TASKS}} for d in digits],
    )
    figures.per_digit_bars(
        {
            f"{t} ({source} input)": result.per_digit[t]
            for t, source in zip(TASKS, ("clean", "noisy"), strict=True)
        },
        directory / "mse_per_digit.png",
    )
    first = first_of_each_digit(clean.labels)
    _grid(
        result,
        clean,
        noisy,
        first,
        [str(d) for d in clean.labels[first]],
        directory / "reconstructions.png",
    )
    errors = per_image_mse(torch.from_numpy(result.outputs["denoising"]), to_unit(clean.images))
    worst = torch.argsort(errors, descending=True)[:WORST_COUNT].numpy()
    titles = [f"{clean.labels[i]}: {errors[i]:.3f}" for i in worst]
    _grid(result, clean, noisy, worst, titles, directory / "worst.png")


WORST_COUNT = 10  # test images shown in the worst-denoised grid


def _grid(
    result: Evaluation,
    clean: Split,
    noisy: Split,
    columns: np.ndarray,
    titles: list[str],
    path: Path,
) -> None:
    figures.image_rows(
        [
            ("original", to_unit(clean.images[columns])),
            ("reconstructed\nfrom original", result.outputs["reconstruction"][columns]),
            ("noisy", to_unit(noisy.images[columns])),
            ("reconstructed\nfrom noisy", result.outputs["denoising"][columns]),
        ],
        path,
        column_titles=titles,
    )
