"""MLflow: where the store lives, one run per training, the logged model, the registry's champion.

The store is `MLFLOW_TRACKING_URI` when set, else `sqlite:///<repo>/mlflow.db` with artifacts in
`<repo>/mlruns`, where <repo> is the main repository even when DVC runs a queued or `--temp`
experiment in a copy under `.dvc/tmp/exps/` (which lacks the git-ignored store).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from mnist_ae.errors import PipelineError

CHAMPION = "champion"
CHAMPION_METRIC = "test_denoising_psnr"  # version tag the champion rule compares


class TrackingError(PipelineError, RuntimeError):
    """The MLflow store does not hold what a stage needs; the message says how to recover."""


def repo_root(start: Path | None = None) -> Path:
    """The main repository's root, also from inside DVC's experiment copies."""
    path = (start or Path.cwd()).resolve()
    parts = path.parts
    for i in range(len(parts) - 2):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    for candidate in (path, *path.parents):
        if (candidate / "dvc.yaml").is_file():
            return candidate
    return path


def tracking_uri(root: Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{root / 'mlflow.db'}"


def setup(experiment: str, root: Path | None = None) -> str:
    """Point MLflow at the store and select (creating if needed) the experiment; return its id."""
    root = root or repo_root()
    mlflow.set_tracking_uri(tracking_uri(root))
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        # Local store: artifacts in <repo>/mlruns, absolute, whatever the working directory.
        location = None if "MLFLOW_TRACKING_URI" in os.environ else (root / "mlruns").as_uri()
        try:
            experiment_id = mlflow.create_experiment(experiment, artifact_location=location)
        except MlflowException:  # created meanwhile by a parallel queued experiment
            experiment_id = mlflow.get_experiment_by_name(experiment).experiment_id
    else:
        experiment_id = found.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def git_commit(root: Path) -> str:
    """The commit the code came from: DVC's experiment baseline if set, else the checkout's HEAD."""
    if os.environ.get("DVC_EXP_BASELINE_REV"):
        return os.environ["DVC_EXP_BASELINE_REV"]
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def run_tags(device: torch.device, device_name: str, dataset_digest: str) -> dict[str, str]:
    commit = git_commit(repo_root())
    tags = {
        "mlflow.source.git.commit": commit,
        "git_commit": commit,
        "device": device.type,
        "gpu_name": device_name if device.type == "cuda" else "none",
        "torch_version": torch.__version__,
        "dataset_digest": dataset_digest,
    }
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_exp_name"] = os.environ["DVC_EXP_NAME"]
    return tags


def start_training_run(params: Mapping[str, Any], tags: Mapping[str, str]) -> mlflow.ActiveRun:
    """The one run of a training, named after the DVC experiment when DVC runs one."""
    run = mlflow.start_run(run_name=os.environ.get("DVC_EXP_NAME") or None, tags=dict(tags))
    mlflow.log_params(dict(params))
    return run


def log_epoch(epoch: Any) -> None:
    """Per-epoch losses with step = epoch (1-based), for MLflow's charts."""
    mlflow.log_metrics(
        {"train_loss": epoch.train_loss, "val_loss": epoch.val_loss}, step=epoch.epoch
    )


RUN_RECORD = "run.json"  # in the train stage's model directory: the run and registered version
RETRAIN = "rerun training with `dvc repro --force train`"


def read_run_record(path: Path) -> dict[str, Any]:
    """The train stage's record of its MLflow run (`run_id`, `registered_model`, `version`)."""
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise TrackingError(f"{path}: missing; run the train stage: dvc repro train") from None
    except json.JSONDecodeError as error:
        raise TrackingError(f"{path}: not valid JSON ({error}); {RETRAIN}") from None
    if not isinstance(record, dict) or not isinstance(record.get("run_id"), str):
        raise TrackingError(f"{path}: no run_id; {RETRAIN}")
    return record


@contextmanager
def resume_run(run_id: str) -> Iterator[mlflow.ActiveRun]:
    """Reopen the training's run so a later stage adds its metrics and artifacts to it."""
    try:
        MlflowClient().get_run(run_id)
    except MlflowException:
        raise TrackingError(
            f"MLflow run {run_id} (from the train stage's outputs) is not in the store at "
            f"{mlflow.get_tracking_uri()}; {RETRAIN}"
        ) from None
    with mlflow.start_run(run_id=run_id) as run:
        yield run


def log_params_once(params: Mapping[str, Any]) -> None:
    """Log params on the active run; a rerun of a later stage with new values records them as
    tags (MLflow params are immutable), so the run shows what the latest analysis used."""
    run = mlflow.active_run()
    existing = MlflowClient().get_run(run.info.run_id).data.params
    new = {k: v for k, v in params.items() if k not in existing}
    changed = {k: str(v) for k, v in params.items() if k in existing and existing[k] != str(v)}
    if new:
        mlflow.log_params(new)
    if changed:
        mlflow.set_tags({f"rerun.{k}": v for k, v in changed.items()})


@dataclass(frozen=True)
class RegisteredModel:
    model_uri: str
    name: str
    version: str

    def as_dict(self) -> dict[str, str]:
        return {"model_uri": self.model_uri, "registered_model": self.name, "version": self.version}


def log_and_register_model(
    model: torch.nn.Module, example: np.ndarray, registered_name: str, tags: Mapping[str, Any]
) -> RegisteredModel:
    """Log the model (torch.export format, float32 N x 1 x 28 x 28 in [0, 1] in and out) and
    register it as a new version tagged with `tags`."""
    model = model.to("cpu").eval()
    with torch.no_grad():
        output = model(torch.from_numpy(example)).numpy()
    info = mlflow.pytorch.log_model(
        model,
        name="model",
        signature=infer_signature(example, output),
        input_example=example,
        registered_model_name=registered_name,
        # A torch.export model needs only torch to run; inferring this costs ~10 s.
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
    )
    version = str(info.registered_model_version)
    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(registered_name, version, key, str(value))
    return RegisteredModel(info.model_uri, registered_name, version)


def tag_model_version(name: str, version: str, tags: Mapping[str, Any]) -> None:
    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value))


def current_champion(name: str) -> ModelVersion | None:
    try:
        return MlflowClient().get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def promote_if_better(name: str, version: str, psnr: float, beats_pca: bool) -> tuple[bool, str]:
    """Move @champion to `version` when it beats PCA at equal code size and the current
    champion's denoising PSNR. Returns (is champion now, why)."""
    if not beats_pca:
        return False, "not promoted: does not beat PCA at equal code size"
    champion = current_champion(name)
    if champion is not None and str(champion.version) == str(version):  # registry gives int or str
        return True, f"version {version} is already the champion"
    if champion is not None:
        best = float(champion.tags.get(CHAMPION_METRIC, "-inf"))
        if psnr <= best:
            return False, (
                f"not promoted: champion version {champion.version} has {best:.3f} dB "
                f">= {psnr:.3f} dB"
            )
    MlflowClient().set_registered_model_alias(name, CHAMPION, version)
    before = f"over version {champion.version}" if champion is not None else "(first champion)"
    return True, f"version {version} is now @{CHAMPION} {before}: {psnr:.3f} dB"
