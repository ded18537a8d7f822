"""DVC stage `evaluate`: test-set reconstruction and denoising metrics, the reconstruction grid,
and the registry's champion rule (beat PCA at equal code size and the current champion)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import mlflow

from mnist_ae import figures, tracking
from mnist_ae.cli import run_stage, stage_parser
from mnist_ae.comparison import pca_scores
from mnist_ae.datasets import first_of_each_digit, load_split, to_unit
from mnist_ae.devices import select_device
from mnist_ae.evaluation import evaluate_autoencoder
from mnist_ae.metrics import TASKS, mse_psnr
from mnist_ae.models import load_checkpoint
from mnist_ae.params import flatten, load_params
from mnist_ae.pca import PCA
from mnist_ae.storage import publish_files, write_json


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--processed", type=Path, required=True, help="clean splits")
    parser.add_argument("--noisy", type=Path, required=True, help="noisy splits")
    parser.add_argument("--model", type=Path, required=True, help="the train stage's directory")
    parser.add_argument("--out", type=Path, required=True, help="directory for the reports")
    args = parser.parse_args()
    params = load_params(args.params)
    device = select_device(params.train.device)

    model = load_checkpoint(args.model / "model.pt", device)
    run_info = json.loads((args.model / "run.json").read_text())
    clean, noisy = load_split(args.processed / "test.npz"), load_split(args.noisy / "test.npz")
    result = evaluate_autoencoder(model, clean, noisy, params.evaluate.batch_size, device)

    # The champion rule needs PCA's denoising at this code size (capped at 784: lossless).
    pca = PCA.fit(to_unit(load_split(args.processed / "train.npz").images))
    pca_row = pca_scores(pca, [model.code_size], to_unit(clean.images), to_unit(noisy.images))[0]
    metrics = {
        **result.metrics,
        "code_size": model.code_size,
        "noisy_input": mse_psnr(to_unit(noisy.images), to_unit(clean.images)),
        "pca_same_code_size": {k: v for k, v in pca_row.items() if k != "code_size"},
    }
    columns = first_of_each_digit(clean.labels)
    with publish_files(args.out) as out:
        write_json(out / "metrics.json", metrics)
        with open(out / "mse_per_digit.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["digit", *(f"{task}_mse" for task in TASKS)])
            for digit in sorted(result.per_digit["reconstruction"]):
                writer.writerow([digit, *(result.per_digit[task][digit] for task in TASKS)])
        figures.image_rows(
            [
                ("original", clean.images[columns] / 255.0),
                ("reconstructed\nfrom original", result.outputs["reconstruction"][columns]),
                ("noisy", noisy.images[columns] / 255.0),
                ("reconstructed\nfrom noisy", result.outputs["denoising"][columns]),
            ],
            out / "reconstructions.png",
            column_titles=[str(d) for d in clean.labels[columns]],
        )

        denoising_psnr = result.metrics["denoising"]["psnr"]
        test_metrics = {
            f"test_{task}_{name}": value for task in TASKS for name, value in result.metrics[task].items()
        }
        test_metrics |= {
            f"test_{task}_mse_digit_{digit}": value
            for task in TASKS for digit, value in result.per_digit[task].items()
        }  # fmt: skip
        tracking.setup(params.mlflow.experiment)
        with tracking.resume_run(run_info["run_id"]):
            tracking.log_params_once(flatten(params, ("evaluate",)))
            mlflow.log_metrics(test_metrics)
            mlflow.log_metric("pca_same_code_size_denoising_psnr", pca_row["denoising_psnr"])
            mlflow.log_artifacts(str(out), "evaluate")
            tracking.tag_model_version(
                run_info["registered_model"], run_info["version"],
                {key: round(value, 6) for key, value in test_metrics.items() if "digit" not in key},
            )  # fmt: skip
            promoted, reason = tracking.promote_if_better(
                run_info["registered_model"], run_info["version"], denoising_psnr,
                beats_pca=denoising_psnr > pca_row["denoising_psnr"],
            )  # fmt: skip
            mlflow.set_tag("champion_decision", reason)
    for task in TASKS:
        print(f"{task}: " + "  ".join(f"{k} {v:.4f}" for k, v in result.metrics[task].items()))
    print(reason)


if __name__ == "__main__":
    run_stage(main)
