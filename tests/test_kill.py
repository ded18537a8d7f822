"""The real train stage, killed: SIGTERM stops it cleanly (run KILLED, checkpoint kept), SIGKILL
loses at most the current epoch, and the resumed training ends with exactly the weights of an
uninterrupted one, in the same MLflow run with each epoch logged once."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import mlflow
import pytest
import torch
from helpers import clean_env, stage_checkout, stage_command
from mlflow.tracking import MlflowClient

from mnist_ae.resume import Checkpoints

EPOCHS = 4
TRAIN = stage_command("train")


def checkout(root: Path) -> Path:
    """A repository with small splits (2,000 training images: a second or two per epoch)."""
    return stage_checkout(root, 2000, epochs=EPOCHS, batch_size=50)


def start_training(root: Path, stdout, stderr) -> subprocess.Popen:
    return subprocess.Popen(
        TRAIN, cwd=root, env=clean_env(), stdout=stdout, stderr=stderr, text=True
    )


def train_until(root: Path, line: str | None, sig: int | None) -> tuple[int, str]:
    """Run the train stage; when it prints `line`, send `sig`. Returns (status, output)."""
    process = start_training(root, subprocess.PIPE, subprocess.STDOUT)
    seen = []
    for text in process.stdout:
        seen.append(text)
        if line is not None and text.startswith(line):
            os.kill(process.pid, sig)
            line = None
    return process.wait(timeout=300), "".join(seen)


def weights(root: Path) -> dict[str, torch.Tensor]:
    return torch.load(root / "models" / "model.pt", weights_only=True)["state_dict"]


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


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    root = checkout(tmp_path_factory.mktemp("kill") / "uninterrupted")
    reference = start_training(root, subprocess.DEVNULL, subprocess.PIPE)
    yield root, reference  # runs while the interrupted one does
    reference.kill()


def test_sigterm_then_sigkill_then_resume_gives_the_uninterrupted_weights(uninterrupted, tmp_path):
    root = checkout(tmp_path / "interrupted")
    status, output = train_until(root, f"epoch 1/{EPOCHS}", signal.SIGTERM)
    assert status == 128 + signal.SIGTERM, output
    assert (
        output.strip().splitlines()[-1].startswith("error: interrupted by SIGTERM; the checkpoint ")
    ), output
    assert "Traceback" not in output
    run, steps, versions = the_run(root)
    assert run.info.status == "KILLED" and steps == [1] and not versions
    folder = root / ".checkpoints" / "train"
    (saved,) = folder.glob("*.pt")  # named by its key
    progress, run_id = Checkpoints(folder, saved.stem).load()
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
    assert not list((root / ".checkpoints" / "train").glob("*.pt"))  # removed once complete

    reference_root, reference = uninterrupted
    assert reference.wait(timeout=300) == 0, reference.stderr.read()
    expected, resumed = weights(reference_root), weights(root)
    assert expected.keys() == resumed.keys()
    for name in expected:
        assert torch.equal(expected[name], resumed[name]), name


def test_a_damaged_checkpoint_is_discarded_with_a_warning_and_training_starts_over(tmp_path):
    root = stage_checkout(tmp_path / "damaged", 500, epochs=2, batch_size=50)
    status, _ = train_until(root, "epoch 1/2", signal.SIGTERM)
    assert status == 128 + signal.SIGTERM
    (saved,) = (root / ".checkpoints" / "train").glob("*.pt")
    saved.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])  # a torn write
    status, output = train_until(root, None, None)
    assert status == 0, output
    assert f"warning: checkpoint {saved} is unusable" in output and "starts over" in output
    assert "resuming" not in output and "epoch 1/2" in output and "epoch 2/2" in output
    assert not saved.exists()
