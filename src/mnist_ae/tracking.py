"""MLflow: where the store is, the one run of each training, and how later stages reopen it.

The store is `MLFLOW_TRACKING_URI` when set (a team server), else `sqlite:///<repo>/mlflow.db`
with artifacts in `<repo>/mlruns`, where <repo> is the main repository even when DVC runs a
queued or `--temp` experiment in a copy under `.dvc/tmp/exps/`. A run ends FINISHED, FAILED or
KILLED, never RUNNING once its process is gone: a run whose process was SIGKILLed is marked
FAILED by the next training of the same checkout.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import mlflow
import psutil
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mnist_ae import cli
from mnist_ae.errors import PipelineError
from mnist_ae.interrupts import Interrupted
from mnist_ae.repo import repo_root

EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}  # the UI's training view
CHECKOUT_TAG = "mnist_ae.checkout"  # the main repository the run's stages ran in
PROCESS_TAG = "mnist_ae.process"  # host:pid:start time of the process that has the run open
REACH_SECONDS = 15.0  # a tracking server that does not answer by then is down


class TrackingError(PipelineError, RuntimeError):
    """The MLflow store is unusable or lacks what a stage needs; the message says what to do."""


# -- the store ---------------------------------------------------------------------------------
def tracking_uri(root: Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{root / 'mlflow.db'}"


def _is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def check_reachable(uri: str, within: float = REACH_SECONDS) -> None:
    """A tracking server must answer /health before any work is done (MLflow's client would
    retry for minutes)."""
    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5) as answer:
                if answer.status == 200:
                    return
                problem = f"HTTP {answer.status}"
        except urllib.error.HTTPError as error:
            problem = f"HTTP {error.code}"
        except (OSError, ValueError) as error:
            problem = str(getattr(error, "reason", error))
        if time.monotonic() >= deadline:
            raise TrackingError(
                f"the MLflow tracking server {uri} (MLFLOW_TRACKING_URI) does not answer "
                f"({problem}); start it (python3 dev.py stack up) or unset MLFLOW_TRACKING_URI "
                "to use the local store"
            )
        time.sleep(1.0)


def translate_error(error: BaseException) -> PipelineError | None:
    """A store error as one line naming the store: a locked or corrupt SQLite file, a server
    that stopped answering."""
    text = f"{type(error).__name__}: {error}"
    uri = mlflow.get_tracking_uri()
    if "database is locked" in text:
        return TrackingError(
            f"the MLflow store {uri} is locked by another process; wait for it to finish (or "
            "stop it), then rerun the stage"
        )
    if "file is not a database" in text or "database disk image is malformed" in text:
        return TrackingError(
            f"the MLflow store {uri} is not a readable SQLite database (corrupt or truncated); "
            "restore it from a backup, or move it aside to start a new store"
        )
    if isinstance(error, MlflowException) and _is_server(uri) and "API request" in str(error):
        return TrackingError(f"the MLflow tracking server {uri} failed a request: {error}"[:500])
    return None


@contextlib.contextmanager
def _creating_store(root: Path, uri: str) -> Iterator[None]:
    """One process at a time creates (or upgrades) a SQLite store: queued experiments starting
    together on a new mlflow.db would otherwise both create its tables, and one would fail."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    import fcntl

    with open(root / "mlflow.db.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def setup(experiment: str, root: Path | None = None) -> str:
    """Point MLflow at the store and select (creating if needed) the experiment; return its id.
    An unreachable server, or a locked or corrupt SQLite store, is a TrackingError here."""
    root = root or repo_root()
    uri = tracking_uri(root)
    cli.register_translator(translate_error)
    if _is_server(uri):
        check_reachable(uri)
    mlflow.set_tracking_uri(uri)
    try:
        with _creating_store(root, uri):
            found = mlflow.get_experiment_by_name(experiment)
            if found is None:
                # Local store: artifacts in <repo>/mlruns, absolute, whatever the working folder.
                location = None if _is_server(uri) else (root / "mlruns").as_uri()
                try:
                    experiment_id = mlflow.create_experiment(
                        experiment, artifact_location=location, tags=EXPERIMENT_KIND
                    )
                except MlflowException:  # created meanwhile by a parallel queued experiment
                    experiment_id = mlflow.get_experiment_by_name(experiment).experiment_id
        if found is not None:
            experiment_id = found.experiment_id
            if not set(EXPERIMENT_KIND.items()) <= set(found.tags.items()):
                for key, value in EXPERIMENT_KIND.items():
                    MlflowClient().set_experiment_tag(experiment_id, key, value)
    except Exception as error:
        translated = translate_error(error)
        if translated is None:
            raise
        raise translated from None
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


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


def process_tags() -> dict[str, str]:
    """Which checkout and which live process hold the run open (see fail_abandoned_runs)."""
    started = psutil.Process().create_time()
    return {
        CHECKOUT_TAG: str(repo_root()),
        PROCESS_TAG: f"{socket.gethostname()}:{os.getpid()}:{started:.2f}",
    }


def _process_gone(tag: str) -> bool:
    """Whether the process named by a PROCESS_TAG value on this host has ended."""
    host, pid, started = tag.rsplit(":", 2)
    if host != socket.gethostname():
        return False  # another machine's run: not ours to judge
    try:
        return abs(psutil.Process(int(pid)).create_time() - float(started)) > 0.01
    except (psutil.Error, ValueError):
        return True


def fail_abandoned_runs(experiment_id: str) -> list[str]:
    """Mark FAILED every RUNNING run of this checkout whose process is gone (killed by SIGKILL,
    an out-of-memory kill or a power cut): MLflow would show it running, its duration growing."""
    client = MlflowClient()
    checkout = str(repo_root())
    abandoned = []
    for run in client.search_runs(
        [experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000
    ):
        tags = run.data.tags
        if tags.get(CHECKOUT_TAG) == checkout and _process_gone(tags.get(PROCESS_TAG, "?:0:0")):
            client.set_tag(
                run.info.run_id, "mnist_ae.abandoned", "its process ended without a word"
            )
            client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.FAILED))
            abandoned.append(run.info.run_id)
    return abandoned


def run_tags(
    device_type: str, gpu_name: str, dataset_digest: str, precision: str
) -> dict[str, str]:
    import torch

    commit = git_commit(repo_root())
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


# -- runs ---------------------------------------------------------------------------------------
def run_exists(run_id: str) -> bool:
    try:
        MlflowClient().get_run(run_id)
    except MlflowException:
        return False
    return True


@contextlib.contextmanager
def open_run(
    run_id: str | None = None,
    name: str | None = None,
    tags: Mapping[str, str] | None = None,
    system_metrics: bool = False,
) -> Iterator[mlflow.ActiveRun]:
    """Start a run (or continue `run_id`) and end it FINISHED, KILLED (SIGTERM or SIGINT) or
    FAILED; while it is open its tags name this process."""
    run = mlflow.start_run(
        run_id=run_id,
        run_name=None if run_id else name,
        tags={**(tags or {}), **process_tags()},
        log_system_metrics=system_metrics,
    )
    if run_id:
        mlflow.set_tags(process_tags())
    status = RunStatus.FAILED
    try:
        yield run
        status = RunStatus.FINISHED
    except Interrupted:
        status = RunStatus.KILLED
        raise
    finally:
        with contextlib.suppress(Exception):  # the run's own error is the one to report
            mlflow.end_run(RunStatus.to_string(status))


@contextlib.contextmanager
def reopen_run(run_id: str) -> Iterator[mlflow.ActiveRun]:
    """Reopen the training's run so a later stage adds its metrics and artifacts to it."""
    if not run_exists(run_id):
        raise TrackingError(
            f"MLflow run {run_id} (from the train stage's outputs) is not in the store at "
            f"{mlflow.get_tracking_uri()}; {RETRAIN}"
        )
    with open_run(run_id) as run:
        yield run


class EpochLog:
    """Per-epoch losses, logged with step = epoch, each epoch exactly once even across a resume.
    While the tracking server is unreachable they are kept and sent later, so a short outage
    costs no training time; `flush(patience)` waits for the server at the end."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.pending: dict[int, dict[str, float]] = {}
        self.warned = False

    def reconcile(self, history: list[Any]) -> None:
        """After a resume: queue the epochs of `history` the run does not have yet."""
        logged = {m.step for m in MlflowClient().get_metric_history(self.run_id, "val_loss")}
        for epoch in history:
            if epoch.epoch not in logged:
                self.add(epoch)
        self.flush()

    def add(self, epoch: Any) -> None:
        self.pending[epoch.epoch] = {"train_loss": epoch.train_loss, "val_loss": epoch.val_loss}

    def flush(self, patience: float = 0.0) -> bool:
        """Send what is pending; True when nothing is left. Retries for `patience` seconds."""
        from mlflow.entities import Metric

        deadline = time.monotonic() + patience
        while self.pending:
            now = int(time.time() * 1000)
            metrics = [
                Metric(key, value, now, step)
                for step, values in sorted(self.pending.items())
                for key, value in values.items()
            ]
            try:
                with _no_retries():
                    MlflowClient().log_batch(self.run_id, metrics=metrics)
            except Exception as error:
                if time.monotonic() >= deadline:
                    if not self.warned:
                        print(
                            f"warning: MLflow unreachable, epoch metrics kept for later ({error})"
                        )
                        self.warned = True
                    return False
                time.sleep(2.0)
                continue
            self.pending.clear()
        return True


@contextlib.contextmanager
def _no_retries() -> Iterator[None]:
    """MLflow's client retries a request for minutes; buffered metrics are retried by us."""
    saved = {
        k: os.environ.get(k)
        for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")
    }
    os.environ.update({"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


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


def log_split(name: str, path: Path, images: Any, context: str) -> None:
    """A split as an MLflow dataset input (source file, its digest, shape): the runs table's
    Dataset column and its filter."""
    import mlflow.data

    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:36]  # MLflow's column width
    with warnings.catch_warnings():  # MLflow registers its local-file source for both "" and
        warnings.simplefilter("ignore", UserWarning)  # file://, then warns the path is ambiguous
        dataset = mlflow.data.from_numpy(images, source=str(path), name=name, digest=digest)
    mlflow.log_input(dataset, context=context)


# -- the train stage's record of its run ------------------------------------------------------
RUN_RECORD = "run.json"  # in the train stage's model directory: the run and registered version
RETRAIN = "rerun training with `dvc repro --force train`"


def read_run_record(path: Path) -> dict[str, Any]:
    """The train stage's record of its MLflow run (`run_id`, `registered_model`, `version`)."""
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise TrackingError(f"{path}: missing; run the train stage: dvc repro train") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise TrackingError(f"{path}: not valid JSON ({error}); {RETRAIN}") from None
    if not isinstance(record, dict) or not isinstance(record.get("run_id"), str):
        raise TrackingError(f"{path}: no run_id; {RETRAIN}")
    return record
