"""MLflow tracking on a real SQLite store: where it lives, run names and tags, runs that always
end, abandoned runs, buffered epoch metrics, and a clear error for a store that is unusable."""

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from mnist_ae import tracking
from mnist_ae.interrupts import Interrupted
from mnist_ae.repo import repo_root


def test_repo_root_resolves_dvc_experiment_copies_to_the_main_repository(tmp_path):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    work = tmp_path / ".dvc" / "tmp" / "exps" / "tmpab12cd"
    work.mkdir(parents=True)
    (work / "dvc.yaml").write_text("stages: {}\n")  # the copy has its own dvc.yaml
    assert repo_root(work) == tmp_path.resolve()
    assert repo_root(tmp_path / "stages") == tmp_path.resolve()


def test_tracking_uri_defaults_to_sqlite_in_the_repo_unless_set(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.tracking_uri(tmp_path) == f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert tracking.tracking_uri(tmp_path) == "http://mlflow.example:5000"


def git(cwd: Path, *args: str) -> str:
    env = os.environ | {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A real MLflow SQLite store in a temporary git repository."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", "dvc.yaml")
    git(tmp_path, "commit", "-qm", "first")
    monkeypatch.chdir(tmp_path)
    experiment_id = tracking.setup("test-experiment")
    yield SimpleNamespace(root=tmp_path, experiment_id=experiment_id)
    mlflow.set_tracking_uri(None)


def test_the_experiment_keeps_artifacts_in_the_repo_and_opens_in_the_training_view(store):
    experiment = mlflow.get_experiment_by_name("test-experiment")
    location = experiment.artifact_location.removeprefix("file://")
    assert Path(location).is_relative_to(store.root / "mlruns")
    assert (store.root / "mlflow.db").is_file()
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_runs_are_named_after_the_dvc_experiment_else_branch_and_commit(store, monkeypatch):
    short = git(store.root, "rev-parse", "--short", "HEAD")
    assert tracking.run_name(store.root) == f"main@{short[:7]}"
    monkeypatch.setenv("DVC_EXP_NAME", "crisp-tern")
    assert tracking.run_name(store.root) == "crisp-tern"
    tags = tracking.run_tags("cpu", "none", "abc123", "fp32")
    assert tags["dvc_exp_name"] == "crisp-tern" and tags["precision"] == "fp32"
    assert tags["git_commit"] == git(store.root, "rev-parse", "HEAD")


@pytest.mark.parametrize(
    ("raised", "status"),
    [(None, "FINISHED"), (ValueError("boom"), "FAILED"), (Interrupted(signal.SIGTERM), "KILLED")],
)
def test_a_run_always_ends_finished_failed_or_killed(store, raised, status):
    expected = pytest.raises(type(raised)) if raised else contextlib.nullcontext()
    with expected, tracking.open_run(None, "r", {"k": "v"}) as run:
        if raised:
            raise raised
    stored = MlflowClient().get_run(run.info.run_id)
    assert stored.info.status == status
    assert stored.data.tags[tracking.CHECKOUT_TAG] == str(store.root.resolve())
    assert stored.data.tags[tracking.PROCESS_TAG].split(":")[1] == str(os.getpid())


def test_a_run_left_running_by_a_dead_process_of_this_checkout_is_marked_failed(store):
    client = MlflowClient()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import psutil

    def running_run(process_tag: str, checkout: str) -> str:
        run = client.create_run(
            store.experiment_id,
            tags={tracking.PROCESS_TAG: process_tag, tracking.CHECKOUT_TAG: checkout},
        )
        return run.info.run_id

    host = tracking.socket.gethostname()
    ours = str(store.root.resolve())
    killed = running_run(f"{host}:{dead.pid}:{time.time():.2f}", ours)
    alive = running_run(tracking.process_tags()[tracking.PROCESS_TAG], ours)
    elsewhere = running_run(f"{host}:{dead.pid}:1.00", "/another/checkout")
    other_host = running_run(f"not-{host}:1:1.00", ours)
    assert psutil.pid_exists(os.getpid())
    assert tracking.fail_abandoned_runs(store.experiment_id) == [killed]
    statuses = {
        run_id: client.get_run(run_id).info.status
        for run_id in (killed, alive, elsewhere, other_host)
    }
    assert statuses == {
        killed: "FAILED",
        alive: "RUNNING",
        elsewhere: "RUNNING",
        other_host: "RUNNING",
    }


def test_later_stages_add_params_once_and_record_changes_as_tags(store):
    with tracking.open_run(None, "r") as run:
        mlflow.log_params({"train.lr": 0.001})
    with tracking.reopen_run(run.info.run_id):
        tracking.log_params_once({"evaluate.batch_size": 100})
    with tracking.reopen_run(run.info.run_id):
        tracking.log_params_once({"evaluate.batch_size": 200})
    stored = MlflowClient().get_run(run.info.run_id)
    assert stored.data.params["evaluate.batch_size"] == "100"
    assert stored.data.tags["rerun.evaluate.batch_size"] == "200"
    assert stored.info.status == "FINISHED"


def test_reopening_an_unknown_run_says_how_to_recover(store):
    with (
        pytest.raises(tracking.TrackingError, match="dvc repro --force train"),
        tracking.reopen_run("0" * 32),
    ):
        pass


def test_epoch_metrics_are_logged_once_each_across_a_resume(store):
    epochs = [SimpleNamespace(epoch=e, train_loss=-e, val_loss=-e - 0.5) for e in (1, 2, 3)]
    with tracking.open_run(None, "r") as run:
        log = tracking.EpochLog(run.info.run_id)
        for epoch in epochs[:2]:
            log.add(epoch)
        assert log.flush()
    resumed = tracking.EpochLog(run.info.run_id)
    resumed.reconcile(epochs)  # epochs 1-2 are in the run, 3 is only in the checkpoint
    history = MlflowClient().get_metric_history(run.info.run_id, "val_loss")
    assert sorted(m.step for m in history) == [1, 2, 3]
    assert {m.step: m.value for m in history}[3] == -3.5


def test_epoch_metrics_wait_while_the_server_is_unreachable(store):
    log = tracking.EpochLog("0" * 32)  # a run id no store has: every send fails
    log.add(SimpleNamespace(epoch=1, train_loss=0.1, val_loss=0.2))
    assert log.flush() is False and 1 in log.pending  # kept, training goes on


@pytest.mark.parametrize(
    ("run_record", "message"),
    [(None, "missing; run the train stage"), ("{", "not valid JSON"), ('{"v": 1}', "no run_id")],
)
def test_a_bad_run_record_is_named_with_the_way_to_recover(tmp_path, run_record, message):
    path = tmp_path / tracking.RUN_RECORD
    if run_record is not None:
        path.write_text(run_record)
    with pytest.raises(tracking.TrackingError, match=message) as raised:
        tracking.read_run_record(path)
    assert str(path) in str(raised.value)


def test_an_unreachable_server_fails_fast_naming_its_uri():
    started = time.monotonic()
    with pytest.raises(tracking.TrackingError, match=r"http://127\.0\.0\.1:9 .*does not answer"):
        tracking.check_reachable("http://127.0.0.1:9", within=2.0)
    assert time.monotonic() - started < 10


def test_a_corrupt_store_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "mlflow.db").write_bytes(b"this is not SQLite" * 100)
    try:
        with pytest.raises(tracking.TrackingError, match="not a readable SQLite database"):
            tracking.setup("x", tmp_path)
    finally:
        mlflow.set_tracking_uri(None)


def test_a_locked_store_is_named(store):
    holder = sqlite3.connect(store.root / "mlflow.db", timeout=0)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(Exception) as raised:
            MlflowClient().create_experiment("while-locked")
        translated = tracking.translate_error(raised.value)
        assert translated is not None and "is locked by another process" in str(translated)
    finally:
        holder.rollback()
        holder.close()
