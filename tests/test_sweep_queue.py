"""The code-size sweep through DVC's queue, two experiments at once, on the local MLflow store
(no server): its own checkout, so that it runs beside test_e2e.py's pipeline."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
import yaml
from helpers import BIN, clean_env, copy_checkout, run
from mlflow.tracking import MlflowClient

MODEL = "mnist-denoising-ae"
pytestmark = pytest.mark.pipeline


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """A fresh copy with test_e2e.py's quick params, committed, its data made and PCA compared:
    what each queued experiment starts from."""
    repo = tmp_path_factory.mktemp("sweep") / "repo"
    copy_checkout(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"] |= {"source": "pypi", "limit": 2_000, "test_limit": 1_000}
    params["train"] |= {"epochs": 2, "batch_size": 16}
    params["compare_pca"]["code_sizes"] = [8, 16, 32]  # the sweep's sizes and the default's
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = clean_env()
    run(["git", "init", "-q", "-b", "main"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "sweep"], repo, env)
    run(["dvc", "repro", "add-noise", "compare-pca"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "data"], repo, env)
    return repo


def test_two_queued_experiments_at_once_share_one_sqlite_store(checkout):
    """The code-size sweep through DVC's queue, two at a time, on the local store (no server): two
    FINISHED trainings in the main repository's mlflow.db, no lock errors, the champion on the
    better, the other saying why not."""
    local = clean_env()
    sizes = ["16", "8"]
    sweep = [str(BIN / "python"), "-m", "mnist_ae.sweep", "run", "--sizes", *sizes]
    swept = run([*sweep, "--set", "train.epochs=1", "--jobs", "2"], checkout, local)
    logs = swept.stdout + swept.stderr  # each experiment's log, shown as it ran
    assert logs.count("epoch 1/1 ") == len(sizes) and "database is locked" not in logs
    mlflow.set_tracking_uri(f"sqlite:///{checkout / 'mlflow.db'}")
    try:
        store = MlflowClient()
        experiment = store.get_experiment_by_name("mnist-autoencoder")
        found = store.search_runs(
            [experiment.experiment_id], "tags.dvc_exp_name LIKE 'sweep-code-%'"
        )
        trainings = [r for r in found if "mnist_ae.stage" not in r.data.tags]
        assert sorted(r.info.run_name for r in trainings) == sorted(
            f"sweep-code-{s}" for s in sizes
        )
        assert {r.info.status for r in found} == {"FINISHED"}
        versions = store.search_model_versions(f"name = '{MODEL}'")
        eligible = [v for v in versions if v.tags.get("beats_pca") == "true"]
        best = max(eligible, key=lambda v: float(v.tags["test_denoising_psnr"]))
        assert str(store.get_model_version_by_alias(MODEL, "champion").version) == str(best.version)
        decisions = {
            r.data.tags["mlflow.parentRunId"]: r.data.tags["champion_decision"]
            for r in found
            if r.data.tags.get("mnist_ae.stage") == "promote"
        }
        assert decisions.pop(best.run_id).startswith(f"version {best.version} is @champion")
        (other,) = decisions.values()  # a champion until the better came, or says why not
        assert other.startswith(("not promoted: champion version ", "version "))
    finally:
        mlflow.set_tracking_uri(None)
    table = (checkout / "reports" / "sweep" / "sweep.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in table[1:]] == sorted(sizes, key=int)
