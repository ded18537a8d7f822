"""The real train stage, killed: SIGTERM stops it cleanly (run KILLED, checkpoint kept), SIGKILL
loses at most the current epoch, and the resumed training completes the same MLflow run with each
epoch logged once. (That a resumed training ends with exactly the weights of an uninterrupted one
is proven in-process: test_training.py; that a damaged checkpoint is discarded with a warning, and
the training then starts as if there were none: test_checkpoints.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import mlflow
import pytest
from helpers import clean_env, stage_checkout, stage_command
from mlflow.tracking import MlflowClient

from mnist_ae.model.checkpoints import TrainingCheckpoint

pytestmark = pytest.mark.stages
EPOCHS = 3


def train_until(root: Path, line: str | None, sig: int | None) -> tuple[int, str]:
    """Run the train stage; when it prints `line`, send `sig`. Returns (status, output)."""
    process = subprocess.Popen(
        stage_command("train"),
        cwd=root,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen = []
    for text in process.stdout:
        seen.append(text)
        if line is not None and text.startswith(line):
            os.kill(process.pid, sig)
            line = None
    return process.wait(timeout=300), "".join(seen)


def the_run(root: Path):
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    try:
        client = MlflowClient()
        experiment = client.get_experiment_by_name("mnist-autoencoder")
        (run,) = client.search_runs([experiment.experiment_id])
        history = client.get_metric_history(run.info.run_id, "val_loss")
        versions = client.search_model_versions(f"run_id = '{run.info.run_id}'")
        return run, sorted(m.step for m in history), versions
    finally:
        mlflow.set_tracking_uri(None)


def test_sigterm_then_sigkill_then_resume_completes_the_same_run(tmp_path):
    root = stage_checkout(tmp_path / "repo", 500, epochs=EPOCHS, batch_size=50)
    status, output = train_until(root, f"epoch 1/{EPOCHS}", signal.SIGTERM)
    assert status == 128 + signal.SIGTERM, output
    last = output.strip().splitlines()[-1]
    assert last.startswith("error: interrupted by SIGTERM; the checkpoint "), output
    assert "Traceback" not in output
    run, steps, versions = the_run(root)
    assert run.info.status == "KILLED" and steps == [1] and not versions
    assert run.data.tags["mnist_ae.error"].startswith("interrupted by SIGTERM")
    folder = root / ".checkpoints"
    (saved,) = folder.glob("*.pt")  # named by its key
    progress, run_id = TrainingCheckpoint(folder, saved.stem).load()
    assert progress.epoch == 1 and run_id == run.info.run_id
    assert not (root / "models").exists()
    assert not [p for p in root.rglob(".*") if ".tmp-" in p.name or ".staging-" in p.name]

    status, output = train_until(root, f"epoch 2/{EPOCHS}", signal.SIGKILL)
    assert status == -signal.SIGKILL
    assert f"resuming from the checkpoint of epoch 1 of {EPOCHS}" in output
    assert the_run(root)[0].info.status == "RUNNING"  # its process is gone: left running

    status, output = train_until(root, None, None)
    assert status == 0, output
    assert f"resuming from the checkpoint of epoch 2 of {EPOCHS}" in output
    run, steps, versions = the_run(root)
    assert run.info.status == "FINISHED" and run.info.run_id == run_id
    assert steps == list(range(1, EPOCHS + 1))  # each epoch exactly once
    assert [v.tags["outputs"] for v in versions] == ["complete"]
    assert not list(folder.glob("*.pt")) and not list(folder.glob("*.lock"))  # removed
