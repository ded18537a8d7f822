"""DVC stage `compare-pca`: PCA at every code size of the sweep against the autoencoder's point."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow

from mnist_ae import tracking
from mnist_ae.cli import run_stage, stage_parser
from mnist_ae.comparison import compare, pca_scores, save_report
from mnist_ae.datasets import load_split, to_unit
from mnist_ae.devices import select_device
from mnist_ae.metrics import TASKS
from mnist_ae.params import flatten, load_params
from mnist_ae.pca import PCA
from mnist_ae.storage import publish_files


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--processed", type=Path, required=True, help="clean splits")
    parser.add_argument("--noisy", type=Path, required=True, help="noisy splits")
    parser.add_argument("--evaluation", type=Path, required=True, help="evaluate's metrics.json")
    parser.add_argument("--run", type=Path, required=True, help="the train stage's run.json")
    parser.add_argument("--out", type=Path, required=True, help="directory for the reports")
    args = parser.parse_args()
    params = load_params(args.params)
    run_record = tracking.read_run_record(args.run)

    evaluated = json.loads(args.evaluation.read_text())
    autoencoder = {"code_size": evaluated["code_size"]} | {
        f"{t}_{m}": evaluated[t][m] for t in TASKS for m in ("mse", "psnr")
    }
    device = select_device(params.train.device)
    clean = to_unit(load_split(args.processed / "test.npz").images).to(device)
    noisy = to_unit(load_split(args.noisy / "test.npz").images).to(device)
    # One eigendecomposition on the device serves every code size of the sweep.
    pca = PCA.fit(to_unit(load_split(args.processed / "train.npz").images).to(device))
    sizes = sorted(set(params.compare_pca.code_sizes) | {autoencoder["code_size"]})
    rows = pca_scores(pca, sizes, clean, noisy)
    metrics = compare(rows, autoencoder)
    with publish_files(args.out) as out:
        save_report(out, rows, autoencoder, metrics)
        tracking.setup(params.mlflow.experiment)
        with tracking.resume_run(run_record["run_id"]):
            tracking.log_params_once(flatten(params, ("compare_pca",)))
            ratios = {k: v for k, v in metrics.items() if k.endswith(("_ratio", "_db"))}
            mlflow.log_metrics({f"vs_pca_{k}": v for k, v in ratios.items()})
            for row in rows:
                step = int(row.pop("code_size"))  # MLflow charts PCA's error against code size
                mlflow.log_metrics({f"pca_{k}": v for k, v in row.items()}, step=step)
            mlflow.log_artifacts(str(out), "compare_pca")
    if metrics["pca_lossless_at_code_size"]:
        print(f"code size {autoencoder['code_size']} >= 784 pixels: PCA with 784 components is "
              "lossless on clean input, so the comparison that matters is denoising")  # fmt: skip
    print("  ".join(f"{k} {v:.3f}" for k, v in ratios.items()))


if __name__ == "__main__":
    run_stage(main)
