"""MLflow tracking on a real SQLite store: where it lives, run names and tags, runs that always
end, later stages' child runs that never change the training's run, abandoned runs, buffered
epoch metrics, the run record, and a clear error for a store that is unusable."""

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
from helpers import empty_store
from mlflow.tracking import MlflowClient

from mnist_ae.plumbing.processes import ProcessStamp
from mnist_ae.plumbing.repo import repo_root
from mnist_ae.plumbing.signals import Interrupted
from mnist_ae.tracking import runs, store
from mnist_ae.tracking.epoch_log import EpochLog
from mnist_ae.tracking.run_record import RUN_RECORD, read_run_record


def test_repo_root_resolves_dvc_experiment_copies_to_the_main_repository(tmp_path):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    work = tmp_path / ".dvc" / "tmp" / "exps" / "tmpab12cd"
    work.mkdir(parents=True)
    (work / "dvc.yaml").write_text("stages: {}\n")  # the copy has its own dvc.yaml
    assert repo_root(work) == tmp_path.resolve()
    assert repo_root(tmp_path / "stages") == tmp_path.resolve()


def test_tracking_uri_defaults_to_sqlite_in_the_repo_unless_set(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert store.tracking_uri(tmp_path) == f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert store.tracking_uri(tmp_path) == "http://mlflow.example:5000"


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
def repo(tmp_path, monkeypatch):
    """A real MLflow SQLite store in a temporary git repository."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", "dvc.yaml")
    git(tmp_path, "commit", "-qm", "first")
    monkeypatch.chdir(tmp_path)
    empty_store(tmp_path)
    experiment_id = store.connect("test-experiment", tmp_path)
    yield SimpleNamespace(root=tmp_path, experiment_id=experiment_id)
    mlflow.set_tracking_uri(None)


def test_the_experiment_keeps_artifacts_in_the_repo_and_opens_in_the_training_view(repo):
    experiment = mlflow.get_experiment_by_name("test-experiment")
    location = experiment.artifact_location.removeprefix("file://")
    assert Path(location).is_relative_to(repo.root / "mlruns")
    assert (repo.root / "mlflow.db").is_file()
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_runs_are_named_after_the_dvc_experiment_else_branch_and_commit(repo, monkeypatch):
    short = git(repo.root, "rev-parse", "--short", "HEAD")
    assert runs.run_name(repo.root) == f"main@{short[:7]}"
    monkeypatch.setenv("DVC_EXP_NAME", "crisp-tern")
    assert runs.run_name(repo.root) == "crisp-tern"
    tags = runs.training_tags(repo.root, "cpu", "none", "abc123", "fp32")
    assert tags["dvc_exp_name"] == "crisp-tern" and tags["precision"] == "fp32"
    assert tags["git_commit"] == git(repo.root, "rev-parse", "HEAD")


@pytest.mark.parametrize(
    ("raised", "status", "error"),
    [
        (None, "FINISHED", None),
        (ValueError("boom"), "FAILED", "ValueError: boom"),
        (Interrupted(signal.SIGTERM), "KILLED", "interrupted by SIGTERM"),
    ],
)
def test_a_run_always_ends_finished_failed_or_killed_saying_why(repo, raised, status, error):
    expected = pytest.raises(type(raised)) if raised else contextlib.nullcontext()
    with expected, runs.open_run(repo.root, None, "r", {"k": "v"}) as run:
        if raised:
            raise raised
    stored = MlflowClient().get_run(run.info.run_id)
    assert stored.info.status == status
    if error is None:
        assert runs.ERROR_TAG not in stored.data.tags
    else:
        assert error in stored.data.tags[runs.ERROR_TAG]
    assert stored.data.tags[runs.CHECKOUT_TAG] == str(repo.root)
    assert stored.data.tags[runs.PROCESS_TAG].split(":")[1] == str(ProcessStamp.current())


def test_a_failed_later_stage_fails_its_child_run_and_leaves_the_training_as_it_was(repo):
    with runs.open_run(repo.root, None, "training", {"k": "v"}) as training:
        mlflow.log_params({"train.lr": 0.001})
    before = MlflowClient().get_run(training.info.run_id)
    with (
        pytest.raises(ValueError, match="damaged"),
        runs.open_child_run(repo.root, training.info.run_id, "evaluate") as child,
    ):
        mlflow.log_params({"evaluate.batch_size": 100})
        raise ValueError("data/noisy/test.npz: damaged")
    with runs.open_child_run(repo.root, training.info.run_id, "evaluate") as again:
        mlflow.log_params({"evaluate.batch_size": 200})  # a rerun with a new value: no conflict
    client = MlflowClient()
    after = client.get_run(training.info.run_id)
    assert after.info.status == "FINISHED" and after.data.tags == before.data.tags
    assert after.data.params == {"train.lr": "0.001"}
    failed, finished = client.get_run(child.info.run_id), client.get_run(again.info.run_id)
    assert failed.info.status == "FAILED" and finished.info.status == "FINISHED"
    assert "data/noisy/test.npz: damaged" in failed.data.tags[runs.ERROR_TAG]
    for child_run in (failed, finished):
        assert child_run.data.tags["mlflow.parentRunId"] == training.info.run_id
        assert child_run.data.tags[runs.STAGE_TAG] == "evaluate"
        assert child_run.info.run_name == "training/evaluate"
    assert finished.data.params == {"evaluate.batch_size": "200"}


def test_a_run_left_running_by_a_dead_process_of_this_checkout_is_marked_failed(repo):
    client = MlflowClient()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    gone = ProcessStamp.of(dead.pid)
    dead.wait()

    def running_run(process_tag: str, checkout: str) -> str:
        run = client.create_run(
            repo.experiment_id,
            tags={runs.PROCESS_TAG: process_tag, runs.CHECKOUT_TAG: checkout},
        )
        return run.info.run_id

    host = runs.socket.gethostname()
    ours = str(repo.root)
    reused = ProcessStamp(os.getpid(), ProcessStamp.current().started - 50)  # the id, reused
    killed = running_run(f"{host}:{gone}", ours)
    recycled = running_run(f"{host}:{reused}", ours)
    alive = running_run(runs.owner_tags(repo.root)[runs.PROCESS_TAG], ours)
    elsewhere = running_run(f"{host}:{gone}", "/another/checkout")
    other_host = running_run(f"not-{host}:1-1.00", ours)
    assert sorted(runs.close_abandoned_runs(repo.experiment_id, repo.root)) == sorted(
        [killed, recycled]
    )
    statuses = {
        run_id: client.get_run(run_id).info.status
        for run_id in (killed, recycled, alive, elsewhere, other_host)
    }
    assert statuses == {
        killed: "FAILED",
        recycled: "FAILED",
        alive: "RUNNING",
        elsewhere: "RUNNING",
        other_host: "RUNNING",
    }


def test_a_child_of_an_unknown_run_says_how_to_recover(repo):
    with (
        pytest.raises(store.TrackingError, match="dvc repro --force train"),
        runs.open_child_run(repo.root, "0" * 32, "evaluate"),
    ):
        pass


def test_epoch_metrics_are_logged_once_each_across_a_resume(repo):
    epochs = [SimpleNamespace(epoch=e, train_loss=-e, val_loss=-e - 0.5) for e in (1, 2, 3)]
    with runs.open_run(repo.root, None, "r") as run:
        log = EpochLog(run.info.run_id)
        for epoch in epochs[:2]:
            log.add(epoch)
        assert log.flush()
    resumed = EpochLog(run.info.run_id)
    resumed.reconcile(epochs)  # epochs 1-2 are in the run, 3 is only in the checkpoint
    history = MlflowClient().get_metric_history(run.info.run_id, "val_loss")
    assert sorted(m.step for m in history) == [1, 2, 3]
    assert {m.step: m.value for m in history}[3] == -3.5


def test_epoch_metrics_wait_while_the_store_refuses_them(repo):
    log = EpochLog("0" * 32)  # a run id no store has: every send fails
    log.add(SimpleNamespace(epoch=1, train_loss=0.1, val_loss=0.2))
    assert log.flush() is False and 1 in log.pending  # kept, training goes on


def test_epoch_metrics_wait_without_delay_while_a_server_is_down(monkeypatch):
    mlflow.set_tracking_uri("http://127.0.0.1:9")  # nothing listens: refused at once
    try:
        log = EpochLog("0" * 32)
        log.add(SimpleNamespace(epoch=1, train_loss=0.1, val_loss=0.2))
        started = time.monotonic()
        assert log.flush() is False and 1 in log.pending
        assert time.monotonic() - started < 5  # not MLflow's minutes of retries
    finally:
        mlflow.set_tracking_uri(None)


@pytest.mark.parametrize(
    ("run_record", "message"),
    [
        (None, "missing; run the train stage"),
        ("{", "not valid JSON"),
        ('{"run_id": "abc"}', "no registered_model, version, model_uri"),
    ],
)
def test_a_bad_run_record_is_named_with_the_way_to_recover(tmp_path, run_record, message):
    path = tmp_path / RUN_RECORD
    if run_record is not None:
        path.write_text(run_record)
    with pytest.raises(store.TrackingError, match=message) as raised:
        read_run_record(path)
    assert str(path) in str(raised.value)


def test_an_unreachable_server_fails_fast_naming_its_uri():
    started = time.monotonic()
    with pytest.raises(store.TrackingError, match=r"http://127\.0\.0\.1:9 .*does not answer"):
        store.check_reachable("http://127.0.0.1:9", within=2.0)
    assert time.monotonic() - started < 10


def test_a_broken_or_locked_store_is_found_before_mlflow_is_needed(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(store, "SQLITE_WAIT_SECONDS", 0.1)
    store.check_before_connecting(tmp_path)  # no store yet: MLflow will create it
    assert not (tmp_path / "mlflow.db").exists()
    empty_store(tmp_path)
    store.check_before_connecting(tmp_path)
    holder = sqlite3.connect(tmp_path / "mlflow.db", timeout=0)
    holder.execute("BEGIN EXCLUSIVE")  # another process in the middle of a write
    try:
        with pytest.raises(store.TrackingError, match=r"mlflow\.db is locked by another process"):
            store.check_before_connecting(tmp_path)
    finally:
        holder.rollback()
        holder.close()
    (tmp_path / "mlflow.db").write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(store.TrackingError, match=r"mlflow\.db is not a readable SQLite database"):
        store.check_before_connecting(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setattr(store, "REACH_SECONDS", 0.5)
    with pytest.raises(store.TrackingError, match=r"http://127\.0\.0\.1:9 .*does not answer"):
        store.check_before_connecting(tmp_path)


def test_a_corrupt_store_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "mlflow.db").write_bytes(b"this is not SQLite" * 100)
    try:
        with pytest.raises(store.TrackingError, match="not a readable SQLite database"):
            store.connect("x", tmp_path)
    finally:
        mlflow.set_tracking_uri(None)
