"""Autoencoder against PCA at the same code size, on clean and noisy test input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from mnist_ae import figures
from mnist_ae.errors import PipelineError
from mnist_ae.metrics import TASKS, mse_psnr
from mnist_ae.pca import PCA
from mnist_ae.storage import write_csv, write_json

PIXELS = 28 * 28


class EvaluationFileError(PipelineError, ValueError):
    """evaluate's metrics.json is missing or is not what evaluate writes."""


def autoencoder_point(path: Path) -> dict[str, float]:
    """The autoencoder's code size and test MSE / PSNR per task, from evaluate's metrics.json."""
    try:
        evaluated = json.loads(Path(path).read_text())
        return {"code_size": int(evaluated["code_size"])} | {
            f"{t}_{m}": float(evaluated[t][m]) for t in TASKS for m in ("mse", "psnr")
        }
    except FileNotFoundError:
        raise EvaluationFileError(f"{path}: missing; run the evaluate stage (dvc repro)") from None
    except (ValueError, KeyError, TypeError) as error:  # JSONDecodeError is a ValueError
        raise EvaluationFileError(
            f"{path}: not evaluate's metrics ({type(error).__name__}: {error}); rebuild it "
            "with `dvc repro --force evaluate`"
        ) from None


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


def pca_at_code_size(
    train_images: torch.Tensor, code_size: int, clean: torch.Tensor, noisy: torch.Tensor
) -> dict[str, float]:
    """PCA fitted on the training images, scored on the test set at one code size (784 or more
    components: lossless on clean input). The champion rule's baseline."""
    row = pca_scores(PCA.fit(train_images), [code_size], clean, noisy)[0]
    row.pop("code_size")
    return row


def compare(pca_rows: list[dict[str, float]], autoencoder: dict[str, float]) -> dict[str, Any]:
    """The autoencoder's error as a ratio of PCA's at its own code size (below 1: it wins).

    With 784 or more numbers PCA is lossless on clean input (the origin article's 1,568-number
    "bottleneck"), so only denoising is compared there.
    """
    code_size = int(autoencoder["code_size"])
    at_code = next(row for row in pca_rows if row["code_size"] == code_size)
    lossless = code_size >= PIXELS
    tasks = ("denoising",) if lossless else TASKS
    return {
        "code_size": code_size,
        "pca_lossless_at_code_size": lossless,
        **{f"{t}_mse_ratio": autoencoder[f"{t}_mse"] / at_code[f"{t}_mse"] for t in tasks},
        "denoising_psnr_gain_db": autoencoder["denoising_psnr"] - at_code["denoising_psnr"],
        "pca": {k: v for k, v in at_code.items() if k != "code_size"},
    }


def save_report(
    directory: Path, pca_rows: list[dict[str, float]], autoencoder: dict[str, float], metrics: dict
) -> None:
    """metrics.json, pca.csv and autoencoder.csv (one DVC plot) and the error-vs-size chart."""
    write_json(directory / "metrics.json", metrics)
    write_csv(directory / "pca.csv", pca_rows)
    write_csv(directory / "autoencoder.csv", [autoencoder])
    inputs = {"reconstruction": "clean", "denoising": "noisy"}  # what each task feeds in
    figures.error_vs_code_size(
        [r["code_size"] for r in pca_rows],
        {inputs[t]: [r[f"{t}_mse"] for r in pca_rows] for t in TASKS},
        int(autoencoder["code_size"]),
        {inputs[t]: autoencoder[f"{t}_mse"] for t in TASKS},
        directory / "error_vs_code_size.png",
    )
