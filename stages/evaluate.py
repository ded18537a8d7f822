"""DVC stage `evaluate`: test-set reconstruction and denoising metrics, the reconstruction grid,
and the registry's champion rule (beat PCA at equal code size and the current champion)."""

from __future__ import annotations

from pathlib import Path

import mlflow

from mnist_ae import tracking
from mnist_ae.checkpoints import load_checkpoint
from mnist_ae.cli import run_stage, stage_parser
from mnist_ae.comparison import pca_scores
from mnist_ae.datasets import load_split, to_unit
from mnist_ae.devices import select_device
from mnist_ae.evaluation import evaluate_autoencoder, save_report
from mnist_ae.metrics import TASKS, mse_psnr
from mnist_ae.params import flatten, load_params
from mnist_ae.pca import PCA
from mnist_ae.storage import publish_files


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--processed", type=Path, required=True, help="clean splits")
    parser.add_argument("--noisy", type=Path, required=True, help="noisy splits")
    parser.add_argument("--model", type=Path, required=True, help="the train stage's directory")
    parser.add_argument("--out", type=Path, required=True, help="directory for the reports")
    args = parser.parse_args()
    params = load_params(args.params)
    run_record = tracking.read_run_record(args.model / tracking.RUN_RECORD)
    device = select_device(params.train.device)

    model = load_checkpoint(args.model / "model.pt", device)
    clean, noisy = load_split(args.processed / "test.npz"), load_split(args.noisy / "test.npz")
    result = evaluate_autoencoder(model, clean, noisy, params.evaluate.batch_size, device)
    # The champion rule needs PCA at this code size (784 or more components: lossless).
    pca = PCA.fit(to_unit(load_split(args.processed / "train.npz").images).to(device))
    test = [to_unit(split.images).to(device) for split in (clean, noisy)]
    pca_row = pca_scores(pca, [model.code_size], *test)[0]
    pca_row.pop("code_size")
    psnr = result.metrics["denoising"]["psnr"]
    with publish_files(args.out) as out:
        save_report(out, result, clean, noisy, {
            "code_size": model.code_size,
            "noisy_input": mse_psnr(to_unit(noisy.images), to_unit(clean.images)),
            "pca_same_code_size": pca_row,
        })  # fmt: skip
        tracking.setup(params.mlflow.experiment)
        with tracking.resume_run(run_record["run_id"]):
            tracking.log_params_once(flatten(params, ("evaluate",)))
            mlflow.log_metrics(result.flat_metrics())
            mlflow.log_metric("pca_same_code_size_denoising_psnr", pca_row["denoising_psnr"])
            mlflow.log_artifacts(str(out), "evaluate")
            name, version = run_record["registered_model"], run_record["version"]
            tracking.tag_model_version(name, version, {
                k: round(v, 6) for k, v in result.flat_metrics().items() if "digit" not in k
            })  # fmt: skip
            _, decision = tracking.promote_if_better(
                name, version, psnr, beats_pca=psnr > pca_row["denoising_psnr"]
            )
            mlflow.set_tag("champion_decision", decision)
    for task in TASKS:
        print(f"{task}: " + "  ".join(f"{k} {v:.4f}" for k, v in result.metrics[task].items()))
    print(decision)


if __name__ == "__main__":
    run_stage(main)
