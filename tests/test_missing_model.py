"""What denoise and serve say when there is nothing to load yet: no store, no registered model,
no @champion, no such version, a server that does not answer. Each is one line naming what to
run, and nothing is created on the way."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, clean_env, empty_store, free_port_base

from mnist_ae import serve
from mnist_ae.tracking import store
from mnist_ae.tracking.store import TrackingError

NAME = "mnist-denoising-ae"  # params.yaml's registered model


@pytest.fixture
def clone(tmp_path, monkeypatch) -> Path:
    """A clone where nothing was trained: params.yaml and dvc.yaml, no store."""
    for name in ("params.yaml", "dvc.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(key, raising=False)
    return tmp_path


def one_line(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, env=clean_env(), capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    return line


@pytest.mark.stages
def test_denoise_in_a_clone_with_no_store_says_to_train_and_creates_none(clone):
    picture = REPO / "docs" / "images" / "reconstructions.png"
    line = one_line("mnist_ae.denoise", str(picture), "--out", "out", cwd=clone)
    assert line == (
        f"error: no MLflow store in {clone} (mlflow.db): train a model first (python3 dev.py "
        "repro), or point MLFLOW_TRACKING_URI at the team's server"
    )
    assert not (clone / "mlflow.db").exists() and not (clone / "out").exists()


@pytest.mark.stages
def test_serve_with_no_registered_model_says_to_train(clone):
    empty_store(clone)
    line = one_line("mnist_ae.serve", "--port", str(free_port_base()), cwd=clone)
    assert line == (
        f"error: no model {NAME} is registered in the MLflow store sqlite:///{clone}/mlflow.db: "
        "train one first (python3 dev.py repro), or point MLFLOW_TRACKING_URI at the team's "
        "server"
    )


@pytest.fixture
def registered_without_champion(clone) -> None:
    """A version of the model registered, none made champion."""
    from mlflow.tracking import MlflowClient

    empty_store(clone)
    client = MlflowClient(f"sqlite:///{clone / 'mlflow.db'}")
    client.create_registered_model(NAME)
    run = client.create_run(client.create_experiment("e"))
    client.create_model_version(NAME, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)


def test_no_champion_yet_says_what_sets_it(registered_without_champion, clone):
    with pytest.raises(TrackingError) as refused:
        serve.main([])
    assert str(refused.value) == (
        f"model {NAME} has no @champion in sqlite:///{clone}/mlflow.db: no version has passed "
        "the champion rule yet (it must beat PCA at its code size); run python3 dev.py repro, "
        "whose promote stage sets it"
    )


def test_a_version_that_does_not_exist_is_named_with_those_that_do(registered_without_champion):
    with pytest.raises(TrackingError) as refused:
        serve.main(["--version", "7"])
    assert str(refused.value) == f"model {NAME} has no version 7 (it has 1)"


def test_a_server_that_does_not_answer_is_named(clone, monkeypatch):
    uri = f"http://127.0.0.1:{free_port_base()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setattr(store, "REACH_SECONDS", 0.0)
    with pytest.raises(TrackingError) as refused:
        serve.main([])
    assert str(refused.value).startswith(f"the MLflow tracking server {uri} (MLFLOW_TRACKING_URI)")
    assert str(refused.value).endswith(
        "start it (python3 dev.py stack up) or unset MLFLOW_TRACKING_URI to use the local store"
    )
