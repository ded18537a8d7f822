"""The MLflow store: where it is, whether it answers, and its errors as one clear line.

The store is `MLFLOW_TRACKING_URI` when set (a team server), else `sqlite:///<repo>/mlflow.db`
with artifacts in `<repo>/mlruns`, where <repo> is the main repository even when DVC runs a
queued or `--temp` experiment in a copy under `.dvc/tmp/exps/`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from mnist_ae.plumbing import cli
from mnist_ae.plumbing.errors import PipelineError

EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}  # the UI's training view
REACH_SECONDS = 15.0  # a tracking server that does not answer by then is down
SQLITE_WAIT_SECONDS = 5.0  # how long MLflow's first read of a SQLite store waits for a lock


class TrackingError(PipelineError, RuntimeError):
    """The MLflow store is unusable or lacks what a stage needs; the message says what to do."""


def tracking_uri(root: Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{root / 'mlflow.db'}"


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def _tls_context() -> ssl.SSLContext | None:
    """What MLflow's client trusts for an https server: MLFLOW_TRACKING_SERVER_CERT_PATH when
    set (a team stack's own authority), else the system's store."""
    authority = os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH")
    return ssl.create_default_context(cafile=authority) if authority else None


def problem_reaching(uri: str, timeout: float = 5.0) -> str | None:
    """Why a tracking server does not answer /health now, or None when it does."""
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=_tls_context()) as answer:
            return None if answer.status == 200 else f"HTTP {answer.status}"
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}"
    except (OSError, ValueError) as error:
        return str(getattr(error, "reason", error))


def check_reachable(uri: str, within: float | None = None) -> None:
    """A tracking server must answer /health before any work is done (MLflow's client would
    retry for minutes); `within` defaults to REACH_SECONDS."""
    deadline = time.monotonic() + (REACH_SECONDS if within is None else within)
    while (problem := problem_reaching(uri)) is not None:
        if time.monotonic() >= deadline:
            raise TrackingError(
                f"the MLflow tracking server {uri} (MLFLOW_TRACKING_URI) does not answer "
                f"({problem}); start it (python3 dev.py stack up) or unset MLFLOW_TRACKING_URI "
                "to use the local store"
            )
        time.sleep(1.0)


def check_before_connecting(root: Path) -> None:
    """What can be known of the store without MLflow, which takes 2 s to import: a server that
    does not answer, or a local SQLite file that is corrupt or locked by another process, is
    the TrackingError `connect` would raise later. A store not created yet is fine."""
    uri = tracking_uri(root)
    path = root / "mlflow.db"
    if is_server(uri):
        check_reachable(uri)
    elif path.exists():
        try:
            opened = sqlite3.connect(f"{path.as_uri()}?mode=rw", uri=True,
                                     timeout=SQLITE_WAIT_SECONDS)  # fmt: skip
            with contextlib.closing(opened) as database:
                database.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as error:
            problem = _sqlite_problem(str(error), uri)
            if problem is None:
                raise
            raise problem from None


def _sqlite_problem(text: str, uri: str) -> TrackingError | None:
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
    return None


def translate_error(error: BaseException) -> PipelineError | None:
    """A store error as one line naming the store: a locked or corrupt SQLite file, a server
    that stopped answering."""
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = mlflow.get_tracking_uri()
    problem = _sqlite_problem(f"{type(error).__name__}: {error}", uri)
    if problem is not None:
        return problem
    if isinstance(error, MlflowException) and is_server(uri) and "API request" in str(error):
        return TrackingError(f"the MLflow tracking server {uri} failed a request: {error}"[:500])
    return None


@contextlib.contextmanager
def _creating_store(root: Path, uri: str) -> Iterator[None]:
    """One process at a time creates (or upgrades) a SQLite store: queued experiments starting
    together on a new mlflow.db would otherwise both create its tables, and one would fail."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    with open(root / "mlflow.db.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def connect_to_read(root: Path) -> str:
    """Point MLflow at the store of the repository `root` to read its registry, creating
    nothing: a local store that does not exist yet, an unreachable server, or a locked or
    corrupt SQLite store is a TrackingError that says what to do. Returns the store's URI."""
    import mlflow

    uri = tracking_uri(root)
    if not is_server(uri) and not (root / "mlflow.db").is_file():
        raise TrackingError(
            f"no MLflow store in {root} (mlflow.db): train a model first (python3 dev.py "
            "repro), or point MLFLOW_TRACKING_URI at the team's server"
        )
    check_before_connecting(root)
    cli.register_translator(translate_error)
    mlflow.set_tracking_uri(uri)
    return uri


def connect(experiment: str, root: Path) -> str:
    """Point MLflow at the store of the repository `root` and select (creating if needed) the
    experiment; return its id. An unreachable server, or a locked or corrupt SQLite store, is a
    TrackingError here."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(root)
    cli.register_translator(translate_error)
    if is_server(uri):
        check_reachable(uri)
    mlflow.set_tracking_uri(uri)
    try:
        with _creating_store(root, uri):
            found = mlflow.get_experiment_by_name(experiment)
            if found is None:
                # Local store: artifacts in <repo>/mlruns, absolute, whatever the working folder.
                location = None if is_server(uri) else (root / "mlruns").as_uri()
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
