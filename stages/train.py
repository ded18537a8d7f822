"""DVC stage `train`: fit the autoencoder, track it in MLflow and register it in the registry."""

from __future__ import annotations

from pathlib import Path

import mlflow
import torch

from mnist_ae import tracking
from mnist_ae.cli import run_stage, stage_parser
from mnist_ae.datasets import files_digest
from mnist_ae.devices import device_description, select_device
from mnist_ae.models import ModelConfig, build_model, save_checkpoint, to_model_input
from mnist_ae.params import flatten, load_params
from mnist_ae.storage import atomic_path, publish_files, write_json
from mnist_ae.training import TrainSettings, fit, load_pairs, save_history

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
    p = params.train
    device = select_device(p.device)

    data, files = load_pairs(args.processed, args.noisy, p.denoise, device)
    torch.manual_seed(params.seed)
    config = ModelConfig(params.model.arch, params.model.latent_dim)
    model = build_model(config).to(device)
    settings = TrainSettings(p.loss, p.lr, p.epochs, p.batch_size, params.seed)
    tracking.setup(params.mlflow.experiment)
    tags = tracking.run_tags(device, device_description(device), files_digest(files))
    with (
        tracking.start_training_run(flatten(params, TRACKED_SECTIONS), tags) as run,
        atomic_path(args.out, is_dir=True) as model_dir,
        publish_files(args.reports) as reports_dir,
    ):
        print(f"training {config.arch} (code {model.code_size}) on {device_description(device)}")
        result = fit(model, data["train"], data["val"], settings, on_epoch=tracking.log_epoch)
        save_history(result, reports_dir, p.loss, model.code_size)
        speed = {
            "train_seconds": result.train_seconds,
            "images_per_second": result.images_per_second,
        }
        mlflow.log_metrics(result.summary() | speed)
        mlflow.log_artifacts(str(reports_dir), "train")
        mlflow.log_artifact(str(args.noise_figure), "add_noise")
        version_tags = {
            "device": device.type,
            "gpu_name": tags["gpu_name"],
            "arch": config.arch,
            "code_size": model.code_size,
            "best_val_loss": result.best_val_loss,
        }
        example = to_model_input(data["val"].inputs[:4]).cpu().numpy()
        registered = tracking.log_and_register_model(
            model, example, params.mlflow.registered_model, version_tags
        )
        save_checkpoint(model_dir / "model.pt", model, config)
        write_json(model_dir / "run.json", {"run_id": run.info.run_id, **registered.as_dict()})
    print(
        f"best val loss {result.best_val_loss:.5f} (epoch {result.best_epoch}); "
        f"{registered.name} version {registered.version}; MLflow run {run.info.run_id}"
    )


if __name__ == "__main__":
    run_stage(main)
