"""The train stage: a training resumable from the checkpoint written after every epoch, tracked as
one MLflow run (the same run after a resume, each epoch's losses logged once), and registered as
a model version only together with its complete outputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mnist_ae.analysis import figures, not_a_digit
from mnist_ae.analysis.evaluation import batched
from mnist_ae.data.noise import add_gaussian_noise, split_rng
from mnist_ae.data.pixels import to_model_input
from mnist_ae.data.splits import TrainingData
from mnist_ae.model.checkpoints import TrainingCheckpoint, checkpoint_key, code_digest
from mnist_ae.model.devices import (
    configure_backends,
    device_description,
    peak_host_rss_mib,
    resolve_precision,
    select_device,
    uses_channels_last,
)
from mnist_ae.model.loop import Pairs, TrainingDiverged, TrainSettings, fit
from mnist_ae.model.model_file import MODEL_FILE, save_model
from mnist_ae.model.networks import Autoencoder, ModelConfig, build_model
from mnist_ae.model.progress import Progress, TrainResult
from mnist_ae.plumbing.digests import sha256_file, sha256_files
from mnist_ae.plumbing.outputs import atomic_path, publish_files, write_csv, write_json
from mnist_ae.plumbing.params import Params, flatten
from mnist_ae.plumbing.repo import repo_root
from mnist_ae.plumbing.signals import Interrupted, critical
from mnist_ae.tracking import model_card, registrar, registry, runs, store
from mnist_ae.tracking.epoch_log import EpochLog
from mnist_ae.tracking.run_record import RUN_RECORD, RunRecord

# The params keys that define a training: logged to MLflow and part of the checkpoint's key.
DEFINED_BY = ("seed", "data.val_fraction", "data.limit", "noise.std", "model", "train")


@dataclass
class Job:
    """Everything a training needs, resolved from the params before any work starts."""

    params: Params
    root: Path  # the main repository: its MLflow store and checkpoints folder
    device: torch.device
    precision: str
    settings: TrainSettings
    config: ModelConfig
    pairs: dict[str, tuple[np.ndarray, np.ndarray]]
    sources: dict[Path, np.ndarray]  # each split file read, with its images
    data_digest: str
    defined_by: dict[str, Any]
    checkpoint: TrainingCheckpoint

    @classmethod
    def prepare(cls, params: Params, data: TrainingData, checkpoints: Path) -> Job:
        """`data`: what data.splits.training_arrays read; `checkpoints`: the folder of training
        checkpoints, relative to the main repository."""
        p, root = params.train, repo_root()
        device = select_device(p.device)
        configure_backends(device)
        precision = resolve_precision(device, p.precision)
        pairs, sources = data
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
        data_digest = sha256_files(sources)
        key = checkpoint_key(defined_by, data_digest, code_digest())
        config = ModelConfig(params.model.arch, params.model.latent_dim)
        checkpoint = TrainingCheckpoint(root / checkpoints, key)
        return cls(
            params, root, device, precision, settings, config, pairs, sources, data_digest,
            defined_by, checkpoint,
        )  # fmt: skip

    def tags(self) -> dict[str, str]:
        name = device_description(self.device)
        gpu = name if self.device.type == "cuda" else "none"
        return runs.training_tags(
            self.root, self.device.type, gpu, self.data_digest, self.precision
        )


@dataclass(frozen=True)
class Outputs:
    model_dir: Path
    reports: Path
    noise_figure: Path


def run(job: Job, outputs: Outputs) -> tuple[TrainResult, RunRecord]:
    """Train (continuing from the checkpoint if there is one), then publish the outputs and the
    registered version together."""
    experiment_id = store.connect(job.params.mlflow.experiment, job.root)
    for abandoned in runs.close_abandoned_runs(experiment_id, job.root):
        print(f"MLflow run {abandoned} was left RUNNING by a killed process: marked FAILED")
    with job.checkpoint.locked():
        saved = job.checkpoint.load()
        progress, run_id = saved if saved else (None, None)
        if run_id is not None and not runs.run_exists(run_id):
            run_id = None  # another store, or deleted: a new run gets the whole history
        tags = job.tags()
        name = runs.run_name(job.root)
        with runs.open_run(job.root, run_id, name, tags, system_metrics=True) as run:
            model, result, example = _train(job, progress, run.info.run_id)
            calibration = calibrate(job, model)
            record = publish(
                job, outputs, model, result, example, tags, run.info.run_id, calibration
            )
            job.checkpoint.remove()
            runs.log_metrics({"peak_host_rss_mib": peak_host_rss_mib()})  # the whole stage's peak
    return result, record


def _train(
    job: Job, progress: Progress | None, run_id: str
) -> tuple[Autoencoder, TrainResult, np.ndarray]:
    """The model with its best weights, the result, and a batch of validation inputs (the
    registry's input example)."""
    epochs = EpochLog(run_id)
    if progress is None:
        runs.log_params(job.defined_by)
        for path, images in job.sources.items():
            context = "training" if path.stem == "train" else "validation"
            runs.log_split(f"{path.parent.name}/{path.stem}", path, images, context)
    else:
        print(
            f"resuming from the checkpoint of epoch {progress.epoch} of {job.settings.epochs} "
            f"({job.checkpoint.path}); MLflow run {run_id}"
        )
        epochs.reconcile(progress.result.history)
    name = job.params.mlflow.registered_model
    for version in registry.discard_incomplete_versions(name, run_id):
        print(f"{name} version {version}, registered by an interrupted attempt: deleted")
    data = {split: Pairs.to_device(*job.pairs[split], job.device) for split in ("train", "val")}
    torch.manual_seed(job.params.seed)
    model = build_model(job.config).to(job.device)
    print(
        f"training {job.config.arch} (code {model.code_size}) in {job.precision} on "
        f"{device_description(job.device)}"
    )

    def on_epoch(epoch, after: Progress) -> None:
        with critical():  # a finished epoch is saved and logged whole, even if a signal came
            job.checkpoint.save(after, run_id)
            epochs.add(epoch)
            epochs.flush()

    try:
        result = fit(model, data["train"], data["val"], job.settings, on_epoch, resume=progress)
    except Interrupted as stop:
        stop.detail = f"the checkpoint {job.checkpoint.path} is kept: `dvc repro` continues"
        raise
    except TrainingDiverged:
        job.checkpoint.remove()  # the same params would diverge again at the same epoch
        raise
    if not epochs.flush(patience=300):
        raise store.TrackingError(f"MLflow kept refusing the epoch metrics of run {run_id}")
    return model, result, to_model_input(data["val"].inputs[:4]).cpu().numpy()


def calibrate(job: Job, model: Autoencoder) -> not_a_digit.Calibration:
    """The not-a-digit calibration of the trained model, run on the CPU in float32 as serve and
    denoise run it: validation digits clean, at seeded intermediate noise levels, and
    add-noise's noisy copy at the training noise."""
    noisy, clean = job.pairs["calibration"]
    levels = not_a_digit.noise_levels(job.params.noise.std)
    cpu, batch = model.to("cpu").eval(), job.params.evaluate.batch_size
    at_levels = {}
    for index, level in enumerate(levels):
        if index == 0:
            chosen = clean
        elif index == len(levels) - 1:
            chosen = noisy
        else:
            rng = split_rng(job.params.seed, "calibration", index)
            chosen = add_gaussian_noise(clean, level, rng)
        outputs = batched(cpu, chosen, batch, torch.device("cpu")).numpy()
        at_levels[level] = (to_model_input(chosen).numpy(), outputs)
    return not_a_digit.calibrate(at_levels, job.params.anomaly.false_alarm_rate)


def card(job: Job, result: TrainResult, run_id: str, calibration: not_a_digit.Calibration) -> str:
    """The version's model card as registration writes it."""
    data = {str(path): sha256_file(path) for path in job.sources}
    training = {
        "device": device_description(job.device),
        "precision": job.precision,
        "training seconds": f"{result.train_seconds:.1f}",
        "images per second": f"{result.images_per_second:,.0f}",
        "best epoch": f"{result.best_epoch} of {job.settings.epochs}",
        f"best validation loss ({job.params.train.loss})": f"{result.best_val_loss:.5f}",
    }
    return model_card.registration_card(
        job.params.mlflow.registered_model, run_id, data, job.defined_by, training,
        calibration.as_dict(),
    )  # fmt: skip


def publish(
    job: Job,
    outputs: Outputs,
    model: Autoencoder,
    result: TrainResult,
    example: np.ndarray,
    tags: dict[str, str],
    run_id: str,
    calibration: not_a_digit.Calibration,
) -> RunRecord:
    """The stage's outputs and the registered version: the version exists only with complete
    outputs; if anything fails between registering and publishing, it is deleted."""
    registered = None
    try:
        with (
            atomic_path(outputs.model_dir, is_dir=True) as model_dir,
            publish_files(outputs.reports) as reports_dir,
        ):
            write_csv(reports_dir / "losses.csv", result.rows())
            summary = result.summary() | {"precision": job.precision}
            write_json(reports_dir / "metrics.json", summary)
            figures.loss_curves(result.rows(), reports_dir / "losses.png", job.params.train.loss)
            weights = save_model(model_dir / MODEL_FILE, model, job.config)
            write_json(model_dir / not_a_digit.FILE, calibration.as_dict())
            runs.log_metrics(result.summary() | result.speed())
            runs.log_metrics(
                {
                    "not_a_digit_threshold": calibration.threshold,
                    "not_a_digit_val_flagged_noisy": calibration.flagged_noisy,
                    "not_a_digit_val_flagged_clean": calibration.flagged_clean,
                }
            )
            runs.set_tags({registry.WEIGHTS_TAG: weights})
            runs.log_files(reports_dir, "train")
            runs.log_files(outputs.noise_figure, "add_noise")
            version_tags = {key: tags[key] for key in ("device", "gpu_name", "precision")} | {
                "arch": job.config.arch,
                "code_size": model.code_size,
                "best_val_loss": result.best_val_loss,
                registry.WEIGHTS_TAG: weights,
            }
            with critical():
                registered = registry.log_and_register_model(
                    model,
                    example,
                    job.params.mlflow.registered_model,
                    version_tags,
                    registrar.for_store(),
                    {not_a_digit.METADATA_KEY: calibration.as_dict()},
                    card(job, result, run_id, calibration),
                )
                record = RunRecord(
                    run_id=run_id,
                    registered_model=registered.name,
                    version=registered.version,
                    model_uri=registered.model_uri,
                    weights_sha256=weights,
                    model_sha256=registered.model_sha256,
                    checkpoint_key=job.checkpoint.key,
                )
                record.write(model_dir / RUN_RECORD)
        with critical():
            registry.mark_complete(registered)
    except BaseException:
        if registered is not None:
            registry.delete_version(registered.name, registered.version)
        raise
    return record
