"""The autoencoder against PCA at the same code size, on clean and noisy test input: compare-pca's
table of PCA's scores, and the autoencoder's error as a ratio of PCA's (promote). Reads and
writes reports only: no torch."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from mnist_ae.analysis import figures
from mnist_ae.analysis.tasks import METRICS, TASKS
from mnist_ae.plumbing.errors import PipelineError
from mnist_ae.plumbing.outputs import write_csv, write_json

PIXELS = 28 * 28
SCORES = [f"{task}_{name}" for task in TASKS for name in ("mse", "psnr")]


class ReportFileError(PipelineError, ValueError):
    """A report of an earlier stage is missing or not what that stage writes."""


def _read(path: Path, stage: str, parse: Any) -> Any:
    try:
        return parse(Path(path))
    except FileNotFoundError:
        raise ReportFileError(f"{path}: missing; run the {stage} stage (dvc repro)") from None
    except (ValueError, KeyError, TypeError) as error:  # JSONDecodeError is a ValueError
        raise ReportFileError(
            f"{path}: not {stage}'s report ({type(error).__name__}: {error}); rebuild it "
            f"with `dvc repro --force {stage}`"
        ) from None


def read_anomaly(path: Path) -> dict[str, Any]:
    """The anomaly stage's metrics.json: whether Fashion-MNIST was there, its ROC AUC, and the
    share of each set of pictures the version's verdict judged not to be digits, checked."""

    def parse(path: Path) -> dict[str, Any]:
        found = json.loads(path.read_text())
        checked: dict[str, Any] = {"ood_available": bool(found["ood_available"])}
        if checked["ood_available"]:
            checked["roc_auc"] = float(found["roc_auc"])
        checked["not_a_digit"] = {str(k): float(v) for k, v in found["not_a_digit"].items()}
        return checked

    return _read(path, "anomaly", parse)


def read_evaluation(path: Path) -> dict[str, Any]:
    """evaluate's metrics.json: the code size and each task's scores, checked."""

    def parse(path: Path) -> dict[str, Any]:
        evaluation = json.loads(path.read_text())
        checked: dict[str, Any] = {"code_size": int(evaluation["code_size"])}
        for task in TASKS:
            checked[task] = {name: float(evaluation[task][name]) for name in METRICS}
        return checked

    return _read(path, "evaluate", parse)


def read_pca_table(path: Path) -> list[dict[str, float]]:
    """compare-pca's pca.csv: PCA's test scores at each code size, checked."""

    def parse(path: Path) -> list[dict[str, float]]:
        with open(path, newline="") as handle:
            rows = [
                {"code_size": int(row["code_size"])} | {k: float(row[k]) for k in SCORES}
                for row in csv.DictReader(handle)
            ]
        if not rows:
            raise ValueError("no rows")
        return rows

    return _read(path, "compare-pca", parse)


def save_pca_report(directory: Path, rows: list[dict[str, float]], code_size: int) -> None:
    """compare-pca's reports: pca.csv (every code size: a DVC plot) and metrics.json (PCA at the
    model's code size, laid out like evaluate's under `pca`, so `dvc exp show` names differ)."""
    at_code = next(row for row in rows if row["code_size"] == code_size)
    pca = {
        "code_size": code_size,
        "lossless_at_code_size": code_size >= PIXELS,
        **{t: {m: at_code[f"{t}_{m}"] for m in ("mse", "psnr")} for t in TASKS},
    }
    write_json(directory / "metrics.json", {"pca": pca})
    write_csv(directory / "pca.csv", rows)


def autoencoder_point(evaluation: dict[str, Any]) -> dict[str, float]:
    """The autoencoder's code size and test MSE / PSNR per task, from evaluate's metrics."""
    point = {"code_size": int(evaluation["code_size"])}
    return point | {f"{t}_{m}": float(evaluation[t][m]) for t in TASKS for m in ("mse", "psnr")}


def compare(pca_rows: list[dict[str, float]], autoencoder: dict[str, float]) -> dict[str, Any]:
    """The autoencoder's error as a ratio of PCA's at its own code size (below 1: it wins), and
    whether it beats PCA at denoising.

    With 784 or more numbers PCA is lossless on clean input (the origin article's 1,568-number
    "bottleneck"), so only denoising is compared there.
    """
    code_size = int(autoencoder["code_size"])
    at_code = next((row for row in pca_rows if row["code_size"] == code_size), None)
    if at_code is None:
        raise ReportFileError(
            f"compare-pca's table has no row for code size {code_size}: rerun it "
            "(dvc repro compare-pca)"
        )
    lossless = code_size >= PIXELS
    tasks = ("denoising",) if lossless else TASKS
    gain = autoencoder["denoising_psnr"] - at_code["denoising_psnr"]
    return {
        "pca_lossless_at_code_size": lossless,
        **{f"{t}_mse_ratio": autoencoder[f"{t}_mse"] / at_code[f"{t}_mse"] for t in tasks},
        "denoising_psnr_gain_db": gain,
        "beats_pca": gain > 0,
    }


def save_comparison_report(
    directory: Path,
    pca_rows: list[dict[str, float]],
    autoencoder: dict[str, float],
    comparison: dict[str, Any],
) -> None:
    """promote's reports: metrics.json (the ratios), autoencoder.csv (its point, plotted by DVC
    with pca.csv) and the chart of test error against code size."""
    write_json(directory / "metrics.json", comparison)
    write_csv(directory / "autoencoder.csv", [autoencoder])
    inputs = {"reconstruction": "clean", "denoising": "noisy"}  # what each task feeds in
    figures.error_vs_code_size(
        [r["code_size"] for r in pca_rows],
        {inputs[t]: [r[f"{t}_mse"] for r in pca_rows] for t in TASKS},
        int(autoencoder["code_size"]),
        {inputs[t]: autoencoder[f"{t}_mse"] for t in TASKS},
        directory / "error_vs_code_size.png",
    )
