"""The real pipeline, end to end: `dvc repro` in a temporary copy of the repository, on real MNIST
(a stratified 10,000-image subset, one epoch), then the MLflow run and registry read back."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from mnist_ae.datasets import load_split, to_unit
from mnist_ae.idx import IDX_FILES, read_idx
from mnist_ae.metrics import mse_psnr
from mnist_ae.sources import DEBIAN_FASHION_DIR, MNIST_DIGESTS, array_digest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.e2e


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"  # `python` and `dvc` of this environment
    env |= {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (
        f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Path:
    """A fresh clone-like copy with quick params, after one `dvc repro`."""
    repo = tmp_path_factory.mktemp("e2e") / "repo"
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                            cwd=REPO, capture_output=True, text=True,
                            check=True).stdout  # fmt: skip
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, repo / name)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"] |= {"source": "pypi", "limit": 10_000}  # pypi: cached per user after one fetch
    params["train"] |= {"epochs": 1, "batch_size": 16, "lr": 0.002}
    params["compare_pca"]["code_sizes"] = [8, 32, 64]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "e2e"], repo)
    run(["dvc", "repro"], repo)
    return repo


@pytest.fixture(scope="module")
def client(pipeline):
    mlflow.set_tracking_uri(f"sqlite:///{pipeline / 'mlflow.db'}")
    yield MlflowClient()
    mlflow.set_tracking_uri(None)


def only_run(client):
    experiment = client.get_experiment_by_name("mnist-autoencoder")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    return runs[0]


def artifact_paths(client, run_id: str, path: str = "") -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, path):
        found |= artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def test_outputs_are_real_mnist_and_reports(pipeline):
    for name, filename in IDX_FILES.items():
        assert array_digest(read_idx(pipeline / "data" / "raw" / filename)) == MNIST_DIGESTS[name]
    sizes = {
        name: len(load_split(pipeline / "data" / "processed" / f"{name}.npz"))
        for name in ("train", "val", "test")
    }
    assert sizes == {"train": 9000, "val": 1000, "test": 10000}
    evaluation = json.loads((pipeline / "reports" / "evaluate" / "metrics.json").read_text())
    assert 10.5 < evaluation["noisy_input"]["psnr"] < 11.5  # sigma 0.4 noise: about 11 dB
    comparison = json.loads((pipeline / "reports" / "compare_pca" / "metrics.json").read_text())
    assert comparison["code_size"] == 32 and comparison["pca_lossless_at_code_size"] is False
    rows = (pipeline / "reports" / "compare_pca" / "pca.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows] == ["code_size", "8", "32", "64"]
    assert (
        json.loads((pipeline / "reports" / "download" / "source.json").read_text())["served_by"]
        == "pypi"
    )


def test_one_mlflow_run_holds_params_losses_artifacts_and_tags(pipeline, client):
    run = only_run(client)
    assert json.loads((pipeline / "models" / "run.json").read_text())["run_id"] == run.info.run_id
    params = run.data.params
    assert (
        params["train.epochs"] == "1"
        and params["noise.std"] == "0.4"
        and params["data.limit"] == "10000"
    )
    assert (
        params["evaluate.batch_size"] == "1000"
        and params["compare_pca.code_sizes"] == "[8, 32, 64]"
    )
    for name in ("train_loss", "val_loss"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, name)] == [1]
    assert (
        run.data.metrics["test_denoising_psnr"]
        > run.data.metrics["pca_same_code_size_denoising_psnr"]
    )
    artifacts = artifact_paths(client, run.info.run_id)
    assert {"train/losses.csv", "train/losses.png", "add_noise/examples.png",
            "evaluate/metrics.json", "evaluate/reconstructions.png", "evaluate/worst.png",
            "evaluate/mse_per_digit.csv", "evaluate/mse_per_digit.png",
            "latent/interpolation.png", "latent/latent_map.png", "latent/latent_map.csv",
            "anomaly/metrics.json", "anomaly/scores.png",
            "compare_pca/pca.csv", "compare_pca/error_vs_code_size.png"} <= artifacts  # fmt: skip
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=pipeline, capture_output=True, text=True
    ).stdout
    assert run.data.tags["git_commit"] == head.strip()
    assert run.data.tags["device"] == "cpu" and len(run.data.tags["dataset_digest"]) == 64
    assert (pipeline / "mlruns").is_dir()


def test_registered_champion_denoises_through_pyfunc(pipeline, client):
    run = only_run(client)
    version = client.get_model_version_by_alias("mnist-denoising-ae", "champion")
    assert str(version.version) == "1" and version.run_id == run.info.run_id
    assert version.tags["device"] == "cpu"
    assert float(version.tags["test_denoising_psnr"]) == pytest.approx(
        run.data.metrics["test_denoising_psnr"]
    )
    model = mlflow.pyfunc.load_model("models:/mnist-denoising-ae@champion")
    clean = load_split(pipeline / "data" / "processed" / "test.npz").images[:500]
    noisy = load_split(pipeline / "data" / "noisy" / "test.npz").images[:500]
    denoised = model.predict(to_unit(noisy).unsqueeze(1).numpy())
    assert denoised.shape == (500, 1, 28, 28)
    gained = mse_psnr(torch.from_numpy(denoised[:, 0]), to_unit(clean))["psnr"]
    assert gained > mse_psnr(to_unit(noisy), to_unit(clean))["psnr"] + 3  # it really denoises


def test_anomaly_detection_against_fashion_mnist(pipeline, client):
    metrics = json.loads((pipeline / "reports" / "anomaly" / "metrics.json").read_text())
    if not Path(DEBIAN_FASHION_DIR).is_dir():  # CI installs it; elsewhere the mirrors may serve
        assert "ood_available" in metrics
        return
    assert metrics["ood_available"] is True
    assert metrics["roc_auc"] > 0.9  # even one epoch on 9,000 digits tells clothes from digits
    assert 0 < metrics["test_false_alarm_rate"] < 0.05
    assert only_run(client).data.metrics["anomaly_roc_auc"] == pytest.approx(metrics["roc_auc"])


def test_repro_again_is_up_to_date(pipeline):
    result = run(["dvc", "repro"], pipeline)
    assert "Data and pipelines are up to date." in result.stdout


def test_a_temp_experiment_adds_a_second_run_to_the_main_store(pipeline, client):
    run(["git", "add", "-A"], pipeline)
    run(["git", "commit", "-qm", "baseline"], pipeline)
    run(["dvc", "exp", "run", "--temp", "-n", "higher-lr", "-S", "train.lr=0.003"], pipeline)
    experiment = client.get_experiment_by_name("mnist-autoencoder")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])
    assert len(runs) == 2
    assert runs[0].info.run_name == "higher-lr" and runs[0].data.params["train.lr"] == "0.003"
    assert not list((pipeline / ".dvc" / "tmp").rglob("mlflow.db"))
    versions = client.search_model_versions("name='mnist-denoising-ae'")
    assert sorted(str(v.version) for v in versions) == ["1", "2"]


def test_a_sweep_of_two_code_sizes_through_the_dvc_queue(pipeline, client):
    run([str(BIN / "python"), "-m", "mnist_ae.sweep", "run", "--sizes", "8", "64"], pipeline)
    rows = (pipeline / "reports" / "sweep" / "sweep.csv").read_text().splitlines()
    header = rows[0].split(",")
    table = [dict(zip(header, row.split(","), strict=True)) for row in rows[1:]]
    assert [int(row["code_size"]) for row in table] == [8, 64]
    for row in table:
        assert float(row["autoencoder_denoising_mse"]) > 0 and float(row["pca_denoising_mse"]) > 0
    assert (pipeline / "reports" / "sweep" / "sweep.png").stat().st_size > 10_000
    names = {r.info.run_name for r in client.search_runs([client.get_experiment_by_name(
        "mnist-autoencoder").experiment_id])}  # fmt: skip
    assert {"sweep-code-8", "sweep-code-64", "code-size-sweep"} <= names
