"""DVC stage `train`: fit the autoencoder, track it in MLflow and register it in the registry."""

from __future__ import annotations

from pathlib import Path

import mlflow
import torch

from mnist_ae import figures, tracking
from mnist_ae.checkpoints import save_checkpoint
from mnist_ae.cli import run_stage, stage_parser
from mnist_ae.datasets import files_digest, training_arrays
from mnist_ae.devices import (
    configure_backends,
    device_description,
    peak_host_rss_mib,
    resolve_precision,
    select_device,
    uses_channels_last,
)
from mnist_ae.models import ModelConfig, build_model, to_model_input
from mnist_ae.params import flatten, load_params
from mnist_ae.storage import atomic_path, publish_files, write_csv, write_json
from mnist_ae.training import Pairs, TrainSettings, fit

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
    configure_backends(device)

    arrays, files = training_arrays(args.processed, args.noisy, p.denoise)
    data = {name: Pairs.to_device(*pair, device) for name, pair in arrays.items()}
    torch.manual_seed(params.seed)
    config = ModelConfig(params.model.arch, params.model.latent_dim)
    model = build_model(config).to(device)
    precision = resolve_precision(device, p.precision)
    settings = TrainSettings(
        p.loss, p.lr, p.epochs, p.batch_size, params.seed,
        precision=precision, channels_last=uses_channels_last(device), compile=p.compile,
        schedule=p.schedule, fresh_noise_std=params.noise.std if p.fresh_noise else None,
    )  # fmt: skip
    tracking.setup(params.mlflow.experiment)
    tags = tracking.run_tags(device, device_description(device), files_digest(files))
    tags["precision"] = precision
    with (
        tracking.start_training_run(flatten(params, TRACKED_SECTIONS), tags) as run,
        atomic_path(args.out, is_dir=True) as model_dir,
        publish_files(args.reports) as reports_dir,
    ):
        where = device_description(device)
        print(f"training {config.arch} (code {model.code_size}) in {precision} on {where}")
        result = fit(model, data["train"], data["val"], settings, on_epoch=tracking.log_epoch)
        write_csv(reports_dir / "losses.csv", result.rows())
        write_json(reports_dir / "metrics.json", result.summary() | {"code_size": model.code_size})
        figures.loss_curves(result.rows(), reports_dir / "losses.png", p.loss)
        mlflow.log_metrics(result.summary() | result.speed())
        mlflow.log_artifacts(str(reports_dir), "train")
        mlflow.log_artifact(str(args.noise_figure), "add_noise")
        example = to_model_input(data["val"].inputs[:4]).cpu().numpy()
        version_tags = {key: tags[key] for key in ("device", "gpu_name", "precision")} | {
            "arch": config.arch, "code_size": model.code_size, "best_val_loss": result.best_val_loss
        }  # fmt: skip
        registered = tracking.log_and_register_model(
            model, example, params.mlflow.registered_model, version_tags
        )
        save_checkpoint(model_dir / "model.pt", model, config)
        run_record = {"run_id": run.info.run_id, **registered.as_dict()}
        write_json(model_dir / tracking.RUN_RECORD, run_record)
        mlflow.log_metric("peak_host_rss_mib", peak_host_rss_mib())  # the whole stage's peak
    print(
        f"best val loss {result.best_val_loss:.5f} (epoch {result.best_epoch}); "
        f"{registered.name} version {registered.version}; MLflow run {run.info.run_id}"
    )


if __name__ == "__main__":
    run_stage(main)
