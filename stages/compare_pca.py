"""DVC stage `compare-pca`: PCA at every code size of the sweep against the autoencoder's point."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import mlflow

from mnist_ae import figures, tracking
from mnist_ae.cli import run_stage, stage_parser
from mnist_ae.comparison import PIXELS, pca_scores
from mnist_ae.datasets import load_split, to_unit
from mnist_ae.metrics import TASKS
from mnist_ae.params import flatten, load_params
from mnist_ae.pca import PCA
from mnist_ae.storage import publish_files, write_json


def write_rows(path: Path, rows: list[dict[str, float]]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--processed", type=Path, required=True, help="clean splits")
    parser.add_argument("--noisy", type=Path, required=True, help="noisy splits")
    parser.add_argument("--evaluation", type=Path, required=True, help="evaluate's metrics.json")
    parser.add_argument("--run", type=Path, required=True, help="the train stage's run.json")
    parser.add_argument("--out", type=Path, required=True, help="directory for the reports")
    args = parser.parse_args()
    params = load_params(args.params)

    ae_metrics = json.loads(args.evaluation.read_text())
    code_size = int(ae_metrics["code_size"])
    clean = to_unit(load_split(args.processed / "test.npz").images)
    noisy = to_unit(load_split(args.noisy / "test.npz").images)
    pca = PCA.fit(to_unit(load_split(args.processed / "train.npz").images))
    sizes = sorted(set(params.compare_pca.code_sizes) | {code_size})
    rows = pca_scores(pca, sizes, clean, noisy)
    at_code = next(row for row in rows if row["code_size"] == code_size)
    autoencoder = {"code_size": code_size} | {
        f"{task}_{name}": ae_metrics[task][name] for task in TASKS for name in ("mse", "psnr")
    }
    # With 784 or more numbers PCA keeps every pixel's worth: lossless on clean input, so only
    # denoising is a fair comparison there (the origin article's 1,568-number "bottleneck").
    lossless = code_size >= PIXELS
    ratios = {f"{task}_mse_ratio": autoencoder[f"{task}_mse"] / at_code[f"{task}_mse"] for task in TASKS}
    if lossless:
        ratios.pop("reconstruction_mse_ratio")
    metrics = {
        "code_size": code_size,
        "pca_lossless_at_code_size": lossless,
        **ratios,
        "denoising_psnr_gain_db": autoencoder["denoising_psnr"] - at_code["denoising_psnr"],
        "pca": {k: v for k, v in at_code.items() if k != "code_size"},
    }
    with publish_files(args.out) as out:
        write_json(out / "metrics.json", metrics)
        write_rows(out / "pca.csv", rows)
        write_rows(out / "autoencoder.csv", [autoencoder])
        figures.error_vs_code_size(
            [r["code_size"] for r in rows],
            {task: [r[f"{task}_mse"] for r in rows] for task in TASKS},
            code_size, {task: autoencoder[f"{task}_mse"] for task in TASKS},
            out / "error_vs_code_size.png",
        )  # fmt: skip
        tracking.setup(params.mlflow.experiment)
        with tracking.resume_run(json.loads(args.run.read_text())["run_id"]):
            tracking.log_params_once(flatten(params, ("compare_pca",)))
            mlflow.log_metrics({f"pca_vs_ae_{k}": v for k, v in ratios.items()})
            for row in rows:
                mlflow.log_metrics(
                    {f"pca_{k}": v for k, v in row.items() if k != "code_size"}, step=int(row["code_size"])
                )
            mlflow.log_artifacts(str(out), "compare_pca")
    if lossless:
        print(f"code size {code_size} >= {PIXELS} pixels: PCA with {PIXELS} components is "
              "lossless on clean input, so the comparison that matters is denoising")  # fmt: skip
    print("  ".join(f"{k} {v:.3f}" for k, v in ratios.items()))


if __name__ == "__main__":
    run_stage(main)
