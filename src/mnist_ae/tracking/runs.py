"""MLflow runs, each owned by the stage that opened it.

The train stage owns one run per training. Every later stage (evaluate, latent, anomaly,
promote) opens a child run of that training's run and owns only that: a failed evaluation is a
FAILED child run saying what failed, and the training's run stays as the train stage left it.

A run ends FINISHED, FAILED or KILLED, never RUNNING once its process is gone: its tags name the
checkout and the process (host, pid and start time) that hold it open, and a run of this checkout
whose process has ended is marked FAILED by the next stage that opens a run here, or by the
`tidy` stage after a train stage DVC restored from its run-cache.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mnist_ae.plumbing import cli
from mnist_ae.plumbing.digests import sha256_file
from mnist_ae.plumbing.processes import ProcessStamp
from mnist_ae.plumbing.signals import Interrupted
from mnist_ae.tracking.store import TrackingError

CHECKOUT_TAG = "mnist_ae.checkout"  # the main repository the run's stage ran in
PROCESS_TAG = "mnist_ae.process"  # host:pid-start time of the process that has the run open
STAGE_TAG = "mnist_ae.stage"  # the DVC stage a child run records
ERROR_TAG = "mnist_ae.error"  # what failed, on a FAILED or KILLED run
RETRAIN = "rerun training with `dvc repro --force train`"


# -- what a run is called and tagged with ---------------------------------------------------------
def _git(root: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def git_commit(root: Path) -> str:
    """The commit the code came from: DVC's experiment baseline if set, else the checkout's HEAD."""
    return os.environ.get("DVC_EXP_BASELINE_REV") or _git(root, "rev-parse", "HEAD") or "unknown"


def run_name(root: Path) -> str:
    """The DVC experiment's name when DVC runs one, else `<branch>@<short commit>`."""
    if os.environ.get("DVC_EXP_NAME"):
        return os.environ["DVC_EXP_NAME"]
    commit = (_git(root, "rev-parse", "--short", "HEAD") or "no-commit")[:7]
    branch = _git(root, "rev-parse", "--abbrev-ref", "HEAD")
    return f"{branch}@{commit}" if branch and branch != "HEAD" else commit


def training_tags(
    root: Path, device_type: str, gpu_name: str, dataset_digest: str, precision: str
) -> dict[str, str]:
    """What a training ran on and from: commit, device, torch, data, precision, DVC experiment."""
    import torch

    commit = git_commit(root)
    tags = {
        "mlflow.source.git.commit": commit,
        "git_commit": commit,
        "device": device_type,
        "gpu_name": gpu_name,
        "torch_version": torch.__version__,
        "dataset_digest": dataset_digest,
        "precision": precision,
    }
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_exp_name"] = os.environ["DVC_EXP_NAME"]
    return tags


# -- who holds a run open -----------------------------------------------------------------------
def owner_tags(root: Path) -> dict[str, str]:
    """The checkout and the live process that hold a run open (see close_abandoned_runs)."""
    return {
        CHECKOUT_TAG: str(root),
        PROCESS_TAG: f"{socket.gethostname()}:{ProcessStamp.current()}",
    }


def _owner_gone(tag: str) -> bool:
    """Whether the process named by a PROCESS_TAG value on this host has ended."""
    host, _, stamp = tag.partition(":")
    if host != socket.gethostname():
        return False  # another machine's run: not ours to judge
    process = ProcessStamp.parse(stamp)
    return process is None or not process.alive()


def close_abandoned_runs(experiment_id: str, root: Path) -> list[str]:
    """Mark FAILED every RUNNING run of this checkout whose process is gone (killed by SIGKILL,
    an out-of-memory kill or a power cut): MLflow would show it running, its duration growing.
    A training resumed later reopens its run, which then runs again."""
    client = MlflowClient()
    abandoned = []
    for run in client.search_runs(
        [experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000
    ):
        tags = run.data.tags
        if tags.get(CHECKOUT_TAG) == str(root) and _owner_gone(tags.get(PROCESS_TAG, "")):
            client.set_tag(run.info.run_id, ERROR_TAG, "its process ended without a word")
            client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FAILED))
            abandoned.append(run.info.run_id)
    return abandoned


# -- runs ---------------------------------------------------------------------------------------
def run_exists(run_id: str) -> bool:
    try:
        MlflowClient().get_run(run_id)
    except MlflowException:
        return False
    return True


def _what_failed(error: BaseException) -> str:
    described = cli.describe(error)
    return (described[0] if described else f"{type(error).__name__}: {error}")[:500]


@contextlib.contextmanager
def open_run(
    root: Path,
    run_id: str | None = None,
    name: str | None = None,
    tags: Mapping[str, str] | None = None,
    system_metrics: bool = False,
    parent_id: str | None = None,
) -> Iterator[mlflow.ActiveRun]:
    """Start a run (or continue `run_id`) that this process owns, and end it FINISHED, KILLED
    (SIGTERM or SIGINT) or FAILED, with what stopped it as a tag; while it is open its tags name
    this process."""
    owner = owner_tags(root)
    run = mlflow.start_run(
        run_id=run_id,
        run_name=None if run_id else name,
        parent_run_id=parent_id,
        tags={**(tags or {}), **owner},
        log_system_metrics=system_metrics,
    )
    if run_id:
        mlflow.set_tags(owner)
    status = RunStatus.FAILED
    try:
        yield run
        status = RunStatus.FINISHED
    except BaseException as error:
        if isinstance(error, Interrupted):
            status = RunStatus.KILLED
        with contextlib.suppress(Exception):  # the error itself is the one to report
            mlflow.set_tag(ERROR_TAG, _what_failed(error))
        raise
    finally:
        with contextlib.suppress(Exception):
            mlflow.end_run(RunStatus.to_string(status))


@contextlib.contextmanager
def open_child_run(root: Path, parent_id: str, stage: str) -> Iterator[mlflow.ActiveRun]:
    """A later stage's own run, a child of the training's run `parent_id`, which it never
    changes. Named `<training run>/<stage>`; it carries the training's DVC experiment name."""
    try:
        parent = MlflowClient().get_run(parent_id)
    except MlflowException:
        raise TrackingError(
            f"MLflow run {parent_id} (from the train stage's outputs) is not in the store at "
            f"{mlflow.get_tracking_uri()}; {RETRAIN}"
        ) from None
    tags = {STAGE_TAG: stage}
    if "dvc_exp_name" in parent.data.tags:
        tags["dvc_exp_name"] = parent.data.tags["dvc_exp_name"]
    name = f"{parent.info.run_name}/{stage}"
    with open_run(root, name=name, tags=tags, parent_id=parent_id) as run:
        yield run


def log_split(name: str, path: Path, images: Any, context: str) -> None:
    """A split as an MLflow dataset input of the active run (source file, its digest, shape):
    the runs table's Dataset column and its filter."""
    import mlflow.data

    digest = sha256_file(path)[:36]  # MLflow's column width
    with warnings.catch_warnings():  # MLflow registers its local-file source for both "" and
        warnings.simplefilter("ignore", UserWarning)  # file://, then warns the path is ambiguous
        dataset = mlflow.data.from_numpy(images, source=str(path), name=name, digest=digest)
    mlflow.log_input(dataset, context=context)


# -- what a stage records in the run it has open ---------------------------------------------
# Every stage records through these: no module outside tracking/ calls MLflow (a layer test).


def log_params(values: Mapping[str, Any]) -> None:
    mlflow.log_params(dict(values))


def log_metrics(values: Mapping[str, float], model_id: str | None = None) -> None:
    """Metrics of the open run; with `model_id` (a logged model's id), on that model's page too."""
    mlflow.log_metrics({key: float(value) for key, value in values.items()}, model_id=model_id)


def set_tags(values: Mapping[str, Any]) -> None:
    mlflow.set_tags({key: str(value) for key, value in values.items()})


def log_files(path: Path, under: str) -> None:
    """A file, or every file of a folder, as artifacts of the open run under `under`/."""
    if Path(path).is_dir():
        mlflow.log_artifacts(str(path), under)
    else:
        mlflow.log_artifact(str(path), under)


def finished_stage_runs(stage: str, experiment_prefix: str) -> list[dict[str, Any]]:
    """The FINISHED child runs of `stage` in the connected experiment whose DVC experiment's
    name starts with `experiment_prefix`, newest first: each one's DVC experiment, metrics and
    parent run (its training)."""
    found = mlflow.search_runs(
        filter_string=(
            f"tags.dvc_exp_name LIKE '{experiment_prefix}%' and tags.`{STAGE_TAG}` = '{stage}' "
            "and attributes.status = 'FINISHED'"
        ),
        order_by=["attributes.start_time DESC"],
        output_format="list",
    )
    return [
        {
            "experiment": run.data.tags["dvc_exp_name"],
            "metrics": dict(run.data.metrics),
            "parent_id": run.data.tags["mlflow.parentRunId"],
        }
        for run in found
    ]


def params_of(run_id: str) -> dict[str, str]:
    return dict(mlflow.get_run(run_id).data.params)
