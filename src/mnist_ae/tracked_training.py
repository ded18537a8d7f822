"""A training as the train stage runs it: resumable from a checkpoint written after every epoch,
tracked as one MLflow run (the same run after a resume, each epoch's losses logged once), and
registered as a model version only together with its complete outputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch

from mnist_ae import figures, registry, tracking
from mnist_ae.checkpoints import MODEL_FILE, save_checkpoint
from mnist_ae.datasets import files_digest, training_arrays
from mnist_ae.devices import (
    configure_backends,
    device_description,
    peak_host_rss_mib,
    resolve_precision,
    select_device,
    uses_channels_last,
)
from mnist_ae.interrupts import Interrupted, critical
from mnist_ae.models import Autoencoder, ModelConfig, build_model, to_model_input
from mnist_ae.params import Params, flatten
from mnist_ae.repo import repo_root
from mnist_ae.resume import Checkpoints, checkpoint_key, code_digest
from mnist_ae.storage import atomic_path, publish_files, write_csv, write_json
from mnist_ae.training import Pairs, Progress, TrainingDiverged, TrainResult, TrainSettings, fit

# The params keys that define a training: logged to MLflow and part of the checkpoint's key.
DEFINED_BY = ("seed", "data.val_fraction", "data.limit", "noise.std", "model", "train")


@dataclass
class Job:
    """Everything a training needs, resolved from the params before any work starts."""

    params: Params
    device: torch.device
    precision: str
    settings: TrainSettings
    config: ModelConfig
    pairs: dict[str, tuple[np.ndarray, np.ndarray]]
    sources: dict[Path, np.ndarray]  # each split file read, with its images
    defined_by: dict[str, Any]
    checkpoints: Checkpoints

    @classmethod
    def prepare(cls, params: Params, processed: Path, noisy: Path, checkpoints: Path) -> Job:
        p = params.train
        device = select_device(p.device)
        configure_backends(device)
        precision = resolve_precision(device, p.precision)
        pairs, sources = training_arrays(processed, noisy, p.denoise, p.fresh_noise)
        settings = TrainSettings(
            p.loss,
            p.lr,
            p.epochs,
            p.batch_size,
            params.seed,
            precision=precision,
            channels_last=uses_channels_last(device),
            compile=p.compile,
            schedule=p.schedule,
            fresh_noise_std=params.noise.std if p.fresh_noise else None,
        )
        defined_by = flatten(params, DEFINED_BY)
        key = checkpoint_key(defined_by, files_digest(list(sources)), code_digest())
        return cls(
            params,
            device,
            precision,
            settings,
            ModelConfig(params.model.arch, params.model.latent_dim),
            pairs,
            sources,
            defined_by,
            Checkpoints(checkpoints, key),
        )

    def tags(self) -> dict[str, str]:
        name = device_description(self.device)
        gpu = name if self.device.type == "cuda" else "none"
        return tracking.run_tags(
            self.device.type, gpu, files_digest(list(self.sources)), self.precision
        )


@dataclass(frozen=True)
class Outputs:
    model_dir: Path
    reports: Path
    noise_figure: Path


def run(job: Job, outputs: Outputs) -> tuple[TrainResult, registry.RegisteredModel, str]:
    """Train (continuing from the checkpoint if there is one), then publish the outputs and the
    registered version together. Returns the result, the version and the MLflow run id."""
    params = job.params
    experiment_id = tracking.setup(params.mlflow.experiment)
    for abandoned in tracking.fail_abandoned_runs(experiment_id):
        print(
            f"MLflow run {abandoned} of this checkout was left RUNNING by a killed process: "
            "marked FAILED"
        )
    with job.checkpoints.locked():
        saved = job.checkpoints.load()
        progress, run_id = saved if saved else (None, None)
        if run_id is not None and not tracking.run_exists(run_id):
            run_id = None  # another store, or deleted: a new run gets the whole history
        tags = job.tags()
        with tracking.open_run(run_id, tracking.run_name(repo_root()), tags, True) as run:
            run_id = run.info.run_id
            model, result, example = _train(job, progress, run_id)
            registered = publish(job, outputs, model, result, example, tags, run_id)
            job.checkpoints.remove()
            mlflow.log_metric("peak_host_rss_mib", peak_host_rss_mib())  # the whole stage's peak
    return result, registered, run_id


def _train(
    job: Job, progress: Progress | None, run_id: str
) -> tuple[Autoencoder, TrainResult, np.ndarray]:
    """The model with its best weights, the result, and a batch of validation inputs (the
    registry's input example)."""
    epochs = tracking.EpochLog(run_id)
    if progress is None:
        mlflow.log_params(job.defined_by)
        for path, images in job.sources.items():
            context = "training" if path.stem == "train" else "validation"
            tracking.log_split(f"{path.parent.name}/{path.stem}", path, images, context)
    else:
        print(
            f"resuming from the checkpoint of epoch {progress.epoch} of {job.settings.epochs} "
            f"({job.checkpoints.path}); MLflow run {run_id}"
        )
        epochs.reconcile(progress.result.history)
    name = job.params.mlflow.registered_model
    for version in registry.discard_incomplete_versions(name, run_id):
        print(f"{name} version {version}, registered by an interrupted attempt: deleted")
    data = {split: Pairs.to_device(*pair, job.device) for split, pair in job.pairs.items()}
    torch.manual_seed(job.params.seed)
    model = build_model(job.config).to(job.device)
    print(
        f"training {job.config.arch} (code {model.code_size}) in {job.precision} on "
        f"{device_description(job.device)}"
    )

    def on_epoch(epoch, after: Progress) -> None:
        with critical():  # a finished epoch is saved and logged whole, even if a signal came
            job.checkpoints.save(after, run_id)
            epochs.add(epoch)
            epochs.flush()

    try:
        result = fit(model, data["train"], data["val"], job.settings, on_epoch, resume=progress)
    except Interrupted as stop:
        stop.detail = f"the checkpoint {job.checkpoints.path} is kept: `dvc repro` continues"
        raise
    except TrainingDiverged:
        job.checkpoints.remove()  # the same params would diverge again at the same epoch
        raise
    if not epochs.flush(patience=300):
        raise tracking.TrackingError(f"MLflow kept refusing the epoch metrics of run {run_id}")
    return model, result, to_model_input(data["val"].inputs[:4]).cpu().numpy()


def publish(
    job: Job,
    outputs: Outputs,
    model: Autoencoder,
    result: TrainResult,
    example: np.ndarray,
    tags: dict[str, str],
    run_id: str,
) -> registry.RegisteredModel:
    """The stage's outputs and the registered version: the version exists only with complete
    outputs; if anything fails between registering and publishing, it is deleted."""
    registered = None
    try:
        with (
            atomic_path(outputs.model_dir, is_dir=True) as model_dir,
            publish_files(outputs.reports) as reports_dir,
        ):
            write_csv(reports_dir / "losses.csv", result.rows())
            summary = result.summary() | {"code_size": model.code_size}
            write_json(reports_dir / "metrics.json", summary | {"precision": job.precision})
            figures.loss_curves(result.rows(), reports_dir / "losses.png", job.params.train.loss)
            save_checkpoint(model_dir / MODEL_FILE, model, job.config)
            mlflow.log_metrics(result.summary() | result.speed())
            mlflow.log_artifacts(str(reports_dir), "train")
            mlflow.log_artifact(str(outputs.noise_figure), "add_noise")
            version_tags = {key: tags[key] for key in ("device", "gpu_name", "precision")} | {
                "arch": job.config.arch,
                "code_size": model.code_size,
                "best_val_loss": result.best_val_loss,
            }
            with critical():
                registered = registry.log_and_register_model(
                    model, example, job.params.mlflow.registered_model, version_tags
                )
                write_json(
                    model_dir / tracking.RUN_RECORD, {"run_id": run_id, **registered.as_dict()}
                )
        with critical():
            registry.mark_complete(registered)
    except BaseException:
        if registered is not None:
            registry.delete_version(registered.name, registered.version)
        raise
    return registered
