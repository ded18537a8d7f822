"""DVC stage `train`: fit the autoencoder, track it in MLflow and register it in the registry."""

from __future__ import annotations

import csv
from pathlib import Path

import mlflow
import torch

from mnist_ae import figures, tracking
from mnist_ae.cli import run_stage, stage_parser
from mnist_ae.datasets import files_digest, load_splits, split_path
from mnist_ae.devices import device_description, select_device
from mnist_ae.models import ModelConfig, build_model, save_checkpoint, to_model_input
from mnist_ae.params import flatten, load_params
from mnist_ae.storage import atomic_path, publish_files, write_json
from mnist_ae.training import EpochResult, Pairs, TrainSettings, fit

# Sections of params.yaml this run is defined by; later stages log their own sections.
TRACKED_SECTIONS = ("seed", "data", "noise", "model", "train", "mlflow")


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--processed", type=Path, required=True, help="clean splits")
    parser.add_argument("--noisy", type=Path, required=True, help="noisy splits")
    parser.add_argument("--noise-figure", type=Path, required=True, help="PNG logged to MLflow")
    parser.add_argument("--out", type=Path, required=True, help="directory for the model")
    parser.add_argument("--reports", type=Path, required=True, help="directory for losses")
    args = parser.parse_args()
    params = load_params(args.params)
    device = select_device(params.train.device)

    split_dirs = [args.processed, args.noisy] if params.train.denoise else [args.processed]
    inputs = load_splits(split_dirs[-1], ("train", "val"))
    targets = load_splits(args.processed, ("train", "val"))
    data = {
        name: Pairs(
            torch.from_numpy(inputs[name].images).to(device),
            torch.from_numpy(targets[name].images).to(device),
        )
        for name in ("train", "val")
    }
    digest = files_digest([split_path(d, s) for d in split_dirs for s in ("train", "val")])
    torch.manual_seed(params.seed)
    config = ModelConfig(params.model.arch, params.model.latent_dim)
    model = build_model(config).to(device)
    settings = TrainSettings(
        params.train.loss, params.train.lr, params.train.epochs, params.train.batch_size, params.seed
    )

    def log_epoch(epoch: EpochResult) -> None:
        mlflow.log_metrics({"train_loss": epoch.train_loss, "val_loss": epoch.val_loss}, step=epoch.epoch)

    tracking.setup(params.mlflow.experiment)
    tags = tracking.run_tags(device, device_description(device), digest)
    with (
        tracking.start_training_run(flatten(params, TRACKED_SECTIONS), tags) as run,
        atomic_path(args.out, is_dir=True) as model_dir,
        publish_files(args.reports) as reports_dir,
    ):
        print(f"training {config.arch} (code size {model.code_size}) on {device_description(device)}")
        result = fit(model, data["train"], data["val"], settings, on_epoch=log_epoch)
        summary = {"best_epoch": result.best_epoch, "best_val_loss": result.best_val_loss}
        mlflow.log_metrics(
            {**summary, "train_seconds": result.train_seconds, "train_images_per_second": result.images_per_second}
        )
        with open(reports_dir / "losses.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["epoch", "train_loss", "val_loss"])
            writer.writerows([e.epoch, e.train_loss, e.val_loss] for e in result.history)
        write_json(reports_dir / "metrics.json", {**summary, "code_size": model.code_size})
        figures.loss_curves(
            [e.epoch for e in result.history], [e.train_loss for e in result.history],
            [e.val_loss for e in result.history], reports_dir / "losses.png", params.train.loss,
        )  # fmt: skip
        mlflow.log_artifacts(str(reports_dir), "train")
        mlflow.log_artifact(str(args.noise_figure), "add_noise")

        example = to_model_input(data["val"].inputs[:4]).cpu().numpy()
        registered = tracking.log_and_register_model(
            model, example, params.mlflow.registered_model,
            {"device": device.type, "gpu_name": tags["gpu_name"], "arch": config.arch,
             "code_size": model.code_size, "best_val_loss": result.best_val_loss},
        )  # fmt: skip
        save_checkpoint(model_dir / "model.pt", model, config)
        write_json(
            model_dir / "run.json",
            {"run_id": run.info.run_id, "experiment_id": run.info.experiment_id,
             "model_uri": registered.model_uri, "registered_model": registered.name,
             "version": registered.version},
        )  # fmt: skip
    print(f"best val loss {result.best_val_loss:.5f} at epoch {result.best_epoch}; "
          f"registered {registered.name} version {registered.version}; run {run.info.run_id}")  # fmt: skip


if __name__ == "__main__":
    run_stage(main)
