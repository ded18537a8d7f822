"""The real train stage against a tracking server that is down: unreachable from the start, it
fails fast naming the URI; restarted in the middle of the training, the run still completes."""

from __future__ import annotations

import subprocess
import threading
import time

import mlflow
import pytest
import yaml
from helpers import (
    clean_env,
    free_port_base,
    running_stack,
    stack_command,
    stage_checkout,
    stage_command,
)
from mlflow.tracking import MlflowClient

pytestmark = [pytest.mark.services, pytest.mark.stages]
EPOCHS = 4


def test_an_unreachable_server_stops_the_train_stage_before_any_epoch(tmp_path):
    root = stage_checkout(tmp_path / "repo", 500, epochs=1, batch_size=50)
    uri = f"http://127.0.0.1:{free_port_base()}"  # nothing listens there
    done = subprocess.run(  # MLflow's own retries would go on for minutes: past the timeout
        stage_command("train"),
        cwd=root,
        env=clean_env() | {"MLFLOW_TRACKING_URI": uri},
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert uri in done.stderr.strip().splitlines()[-1]
    assert "epoch 1/" not in done.stdout and not (root / "models").exists()


@pytest.fixture
def stack():
    """A stack of this test's own: it stops the tracking server, which the shared one keeps."""
    with running_stack() as layout:
        yield layout


def test_a_server_restarted_during_training_loses_nothing(stack, tmp_path):
    root = stage_checkout(tmp_path / "repo", 1500, epochs=EPOCHS, batch_size=50)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["mlflow"] = {"experiment": "outage", "registered_model": "outage-ae"}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    training = subprocess.Popen(
        stage_command("train"),
        cwd=root,
        env=clean_env() | stack.client_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    restarted = []

    def restart() -> None:  # the server goes down after epoch 1 and comes back a while later
        stack.started()["mlflow"].stop()
        time.sleep(3)
        restarted.append(stack_command(stack.root, "up"))

    output, restarter = [], threading.Thread(target=restart)
    for line in training.stdout:
        output.append(line)
        if line.startswith(f"epoch 1/{EPOCHS}"):
            restarter.start()
    assert training.wait(timeout=300) == 0, "".join(output)
    restarter.join()
    # an epoch ended while the server was down: its losses were kept, then sent
    assert "warning: MLflow unreachable, epoch metrics kept for later" in "".join(output)
    assert restarted[0].returncode == 0, restarted[0].stderr
    assert "mlflow: started" in restarted[0].stdout and "postgres" not in restarted[0].stdout

    mlflow.set_tracking_uri(stack.url("mlflow"))
    try:
        client = MlflowClient()
        (run,) = client.search_runs([client.get_experiment_by_name("outage").experiment_id])
        assert run.info.status == "FINISHED"
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")]
        assert sorted(steps) == list(range(1, EPOCHS + 1))
        (version,) = client.search_model_versions("name = 'outage-ae'")
        assert version.run_id == run.info.run_id and version.tags["outputs"] == "complete"
    finally:
        mlflow.set_tracking_uri(None)
