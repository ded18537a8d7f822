"""The real pipeline end to end, as a team runs it: `dvc repro` in a temporary copy of the
repository (real MNIST via the pypi source, a 2,000-image subset, two epochs) against the team
stack: the MLflow server on PostgreSQL with artifacts in SeaweedFS, and the DVC remote on the
same storage. Then read back, pushed, cloned, pulled, shared and served."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import helpers
import mlflow
import numpy as np
import pytest
import yaml
from conftest import free_port_base
from mlflow.tracking import MlflowClient
from PIL import Image

from mnist_ae.datasets import load_split, to_unit
from mnist_ae.idx import IDX_FILES, read_idx
from mnist_ae.params import AUDIT_ENV
from mnist_ae.sources import MNIST_DIGESTS, array_digest
from mnist_ae.stack.layout import MLFLOW_BUCKET

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MODEL = "mnist-denoising-ae"
pytestmark = pytest.mark.e2e


def clean_env(**extra: str) -> dict[str, str]:
    """This environment's `python` and `dvc`, no MLflow or AWS settings of the caller."""
    env = helpers.clean_env()
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    env |= {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    return env | extra


def run(args: list[str], cwd: Path, env: dict[str, str], ok: bool = True, timeout: float = 900):
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if ok:
        assert result.returncode == 0, f"{args}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def copy_checkout(destination: Path) -> None:
    """What a clone has: the files git tracks, plus uncommitted ones not ignored."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, destination / name)


@pytest.fixture(scope="module")
def env(stack, tmp_path_factory) -> dict[str, str]:
    """A shell after `eval "$(dev.py stack env)"`, sampling system metrics every second."""
    audit = tmp_path_factory.mktemp("audit") / "params-read.jsonl"
    return clean_env(
        **stack.client_env(), MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL="1", **{AUDIT_ENV: str(audit)}
    )


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, env) -> Path:
    """A fresh copy with quick params, committed, after one `dvc repro` against the stack."""
    repo = tmp_path_factory.mktemp("e2e") / "repo"
    copy_checkout(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"] |= {"source": "pypi", "limit": 2_000}  # pypi: cached per user after one fetch
    params["train"] |= {"epochs": 2, "batch_size": 16}  # 17 dB: clearly past PCA's 15.7
    params["compare_pca"]["code_sizes"] = [4, 8, 16, 32, 64]  # the sweep below charts 4-64
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q", "-b", "main"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "e2e"], repo, env)
    run(["dvc", "repro"], repo, env)
    run(["git", "add", "-A"], repo, env)  # as a user does before experimenting
    run(["git", "commit", "-qm", "results"], repo, env)
    return repo


@pytest.fixture(scope="module")
def client(stack, pipeline):
    mlflow.set_tracking_uri(stack.url("mlflow"))
    yield MlflowClient()
    mlflow.set_tracking_uri(None)


def only_run(client):
    experiment = client.get_experiment_by_name("mnist-autoencoder")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    return runs[0]


def test_outputs_are_real_mnist_and_reports(pipeline):
    for name, filename in IDX_FILES.items():
        assert array_digest(read_idx(pipeline / "data" / "raw" / filename)) == MNIST_DIGESTS[name]
    sizes = {
        name: len(load_split(pipeline / "data" / "processed" / f"{name}.npz"))
        for name in ("train", "val", "test")
    }
    assert sizes == {"train": 1800, "val": 200, "test": 10000}
    evaluation = json.loads((pipeline / "reports" / "evaluate" / "metrics.json").read_text())
    assert 10.5 < evaluation["noisy_input"]["psnr"] < 11.5  # sigma 0.4 noise: about 11 dB
    comparison = json.loads((pipeline / "reports" / "compare_pca" / "metrics.json").read_text())
    assert comparison["code_size"] == 32 and comparison["pca_lossless_at_code_size"] is False
    rows = (pipeline / "reports" / "compare_pca" / "pca.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows] == ["code_size", "4", "8", "16", "32", "64"]
    trained = json.loads((pipeline / "reports" / "train" / "metrics.json").read_text())
    assert trained["precision"] == "fp32"  # the same on every CPU: `dvc metrics diff` shows it
    anomaly = json.loads((pipeline / "reports" / "anomaly" / "metrics.json").read_text())
    assert anomaly["ood_available"] is True  # CI installs Debian's dataset-fashion-mnist
    assert anomaly["roc_auc"] > 0.9 and 0 < anomaly["test_false_alarm_rate"] < 0.05


def test_the_run_on_the_server_has_params_losses_datasets_and_system_metrics(pipeline, client):
    experiment = client.get_experiment_by_name("mnist-autoencoder")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    run = only_run(client)
    assert run.info.status == "FINISHED"
    head = run_git(pipeline, "rev-parse", "HEAD~1")  # the commit the pipeline ran at
    assert run.info.run_name == f"main@{head[:7]}"
    assert json.loads((pipeline / "models" / "run.json").read_text())["run_id"] == run.info.run_id
    params = run.data.params
    assert params["train.epochs"] == "2" and params["noise.std"] == "0.4"
    assert params["data.limit"] == "2000" and "data.source" not in params  # not read by train
    assert params["evaluate.batch_size"] == "1000"
    assert params["compare_pca.code_sizes"] == "[4, 8, 16, 32, 64]"
    for name in ("train_loss", "val_loss"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, name)] == [1, 2]
    metrics = run.data.metrics
    assert metrics["test_denoising_psnr"] > metrics["pca_same_code_size_denoising_psnr"]
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= set(
        metrics
    )
    inputs = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert set(inputs) == {
        "processed/train",
        "processed/val",
        "noisy/val",
        "processed/test",
        "noisy/test",
    }  # fresh noise: the noisy training copy is never read
    assert json.loads(inputs["processed/train"].dataset.profile)["features_shape"] == [1800, 28, 28]
    assert len(inputs["noisy/test"].dataset.digest) == 36
    assert run.data.tags["git_commit"] == head and run.data.tags["device"] == "cpu"
    assert run.data.tags["precision"] == "fp32" and len(run.data.tags["dataset_digest"]) == 64


def run_git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True).stdout.strip()


def test_the_version_and_champion_live_on_the_server(pipeline, client):
    run = only_run(client)
    version = client.get_model_version_by_alias(MODEL, "champion")
    assert str(version.version) == "1" and version.run_id == run.info.run_id
    tags = version.tags
    assert tags["device"] == "cpu" and tags["outputs"] == "complete"
    assert tags["noise_std"] == "0.4" and tags["beats_pca"] == "true" and len(tags["test_digest"])
    assert float(tags["test_denoising_psnr"]) == pytest.approx(
        run.data.metrics["test_denoising_psnr"], abs=1e-5
    )
    assert run.data.tags["champion_decision"].startswith("version 1 is @champion")


def test_every_artifact_is_an_object_in_the_bucket(pipeline, client, stack, monkeypatch):
    run = only_run(client)
    for key, value in stack.client_env().items():
        monkeypatch.setenv(key, value)
    objects = boto3.Session().client("s3").list_objects_v2(Bucket=MLFLOW_BUCKET, MaxKeys=1000)
    keys = {item["Key"] for item in objects.get("Contents", [])}
    prefix = f"artifacts/{run.info.experiment_id}/{run.info.run_id}/artifacts/"
    for artifact in (
        "train/losses.csv",
        "train/losses.png",
        "add_noise/examples.png",
        "evaluate/metrics.json",
        "evaluate/reconstructions.png",
        "evaluate/worst.png",
        "latent/interpolation.png",
        "latent/latent_map.csv",
        "anomaly/metrics.json",
        "anomaly/scores.png",
        "compare_pca/pca.csv",
        "compare_pca/error_vs_code_size.png",
    ):
        assert prefix + artifact in keys, artifact
    assert any(key.endswith("/MLmodel") for key in keys)  # the logged model too


def test_each_stage_reads_exactly_the_params_it_lists(pipeline, env):
    dvc = yaml.safe_load((pipeline / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((pipeline / "params.yaml").read_text())
    script_stage = {Path(s["cmd"].split()[1]).name: name for name, s in dvc.items()}
    read: dict[str, set[str]] = {}
    for line in Path(env[AUDIT_ENV]).read_text().splitlines():
        record = json.loads(line)
        read.setdefault(script_stage[record["script"]], set()).update(record["read"])

    def expand(key: str) -> set[str]:
        section = params.get(key)
        return {f"{key}.{k}" for k in section} if isinstance(section, dict) else {key}

    assert set(read) == set(dvc)  # every stage ran once and was audited
    for name, stage in dvc.items():
        listed = set().union(*(expand(key) for key in stage["params"]))
        if name == "check-params":
            assert read[name] <= listed  # it validates every key; the schema reads them all
            continue
        assert read[name] == listed, f"{name}: reads {read[name]}, lists {listed}"


def test_editing_a_module_reruns_exactly_the_stages_that_import_it(pipeline):
    """For every module and stage script: DVC's own dependency check (what `dvc status`
    reports) after an edit names exactly the stages whose code imports it."""
    from dvc.repo import Repo
    from test_pipeline_contract import code_closure

    scripts = {
        name: pipeline / stage["cmd"].split()[1]
        for name, stage in yaml.safe_load((pipeline / "dvc.yaml").read_text())["stages"].items()
    }
    imports = {name: code_closure(script, pipeline) for name, script in scripts.items()}
    files = sorted((pipeline / "src" / "mnist_ae").glob("*.py")) + sorted(scripts.values())
    with Repo(str(pipeline)) as repo, repo.lock:
        stages = list(repo.index.stages)
        assert not [stage.name for stage in stages if stage.changed_deps()]
        for path in files:
            module = str(path.relative_to(pipeline))
            original = path.read_bytes()
            path.write_bytes(original + b"\n# an edit\n")
            try:
                changed = {stage.name for stage in stages if stage.changed_deps()}
            finally:
                path.write_bytes(original)
            assert changed == {name for name, code in imports.items() if module in code}, module


def test_repro_again_is_up_to_date(pipeline, env):
    assert "Data and pipelines are up to date." in run(["dvc", "repro"], pipeline, env).stdout


def tree_digest(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_bad_value_is_refused_before_dvc_touches_the_last_good_outputs(pipeline, env):
    kept = {name: tree_digest(pipeline / name) for name in ("models", "reports/train")}
    refused = run(["dvc", "exp", "run", "-S", "train.epochs=-3"], pipeline, env, ok=False)
    assert refused.returncode != 0
    assert "train.epochs: Input should be greater than or equal to 1" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert {name: tree_digest(pipeline / name) for name in kept} == kept
    run(["git", "checkout", "params.yaml"], pipeline, env)  # the value fixed: nothing to redo
    assert "Data and pipelines are up to date." in run(["dvc", "status"], pipeline, env).stdout


def test_four_queued_experiments_two_at_a_time_share_one_sqlite_store(pipeline, env):
    """The code-size sweep through `dvc queue start -j 2`, on the local store (no server): four
    FINISHED runs in the main repository's mlflow.db, no lock errors, the champion on the best."""
    local = {k: v for k, v in env.items() if k not in ("MLFLOW_TRACKING_URI", AUDIT_ENV)}
    sizes = ["64", "16", "8", "4"]  # not the baseline's 32: DVC would have nothing to run
    run(
        [
            *(str(BIN / "python"), "-m", "mnist_ae.sweep", "run", "--sizes", *sizes),
            *("--set", "train.epochs=1", "--jobs", "2"),
        ],
        pipeline,
        local,
    )
    logs = "".join(
        run(["dvc", "queue", "logs", f"sweep-code-{size}"], pipeline, local).stdout
        for size in sizes
    )
    assert "database is locked" not in logs
    mlflow.set_tracking_uri(f"sqlite:///{pipeline / 'mlflow.db'}")
    try:
        store = MlflowClient()
        experiment = store.get_experiment_by_name("mnist-autoencoder")
        runs = store.search_runs(
            [experiment.experiment_id], "tags.dvc_exp_name LIKE 'sweep-code-%'"
        )
        assert sorted(r.info.run_name for r in runs) == sorted(f"sweep-code-{s}" for s in sizes)
        assert {r.info.status for r in runs} == {"FINISHED"}
        versions = store.search_model_versions(f"name = '{MODEL}'")
        eligible = [v for v in versions if v.tags.get("beats_pca") == "true"]
        best = max(eligible, key=lambda v: float(v.tags["test_denoising_psnr"]))
        assert str(store.get_model_version_by_alias(MODEL, "champion").version) == str(best.version)
        decisions = {r.info.run_id: r.data.tags["champion_decision"] for r in runs}
        assert decisions.pop(best.run_id).startswith(f"version {best.version} is @champion")
        # The others were champions until a better one came, or say why not (code size 4,
        # queued last, is evaluated after a better champion exists)
        assert any(d.startswith("not promoted: champion version ") for d in decisions.values())
        assert all(d.startswith(("not promoted: ", "version ")) for d in decisions.values())
    finally:
        mlflow.set_tracking_uri(None)
    table = (pipeline / "reports" / "sweep" / "sweep.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in table[1:]] == sorted(sizes, key=int)


def test_push_then_a_fresh_clone_pulls_everything_and_shares_experiments(pipeline, env, tmp_path):
    origin = tmp_path / "origin.git"
    run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], tmp_path, env)
    run(["git", "remote", "add", "origin", str(origin)], pipeline, env)
    run(["git", "push", "-q", "origin", "main"], pipeline, env)
    run(["dvc", "push"], pipeline, env)
    run(["dvc", "exp", "push", "origin", "sweep-code-8"], pipeline, env)  # queued above

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(origin), str(clone)], tmp_path, env)
    run(["dvc", "pull"], clone, env)
    assert tree_digest(clone / "models") == tree_digest(pipeline / "models")
    assert "Data and pipelines are up to date." in run(["dvc", "status"], clone, env).stdout
    assert "Data and pipelines are up to date." in run(["dvc", "repro"], clone, env).stdout
    run(["dvc", "exp", "pull", "origin", "sweep-code-8"], clone, env)
    shown = run(["dvc", "exp", "show", "--json"], clone, env).stdout
    assert "sweep-code-8" in shown


def test_the_champion_served_over_http_denoises_batches_of_1_and_256(pipeline, stack, env):
    port = free_port_base()
    server = subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "models",
            "serve",
            "-m",
            f"models:/{MODEL}@champion",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=pipeline,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not _answers(f"http://127.0.0.1:{port}/ping"):
            assert server.poll() is None, server.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the model server did not start in 180 s"
            time.sleep(1)
        clean = to_unit(load_split(pipeline / "data" / "processed" / "test.npz").images[:256])
        noisy = to_unit(load_split(pipeline / "data" / "noisy" / "test.npz").images[:256])
        for batch in (1, 256):
            body = json.dumps({"inputs": noisy[:batch, None].tolist()}).encode()
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/invocations", body, {"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=60) as answer:
                denoised = np.array(json.load(answer)["predictions"], dtype=np.float32)
            assert denoised.shape == (batch, 1, 28, 28)
            error = float(((denoised[:, 0] - clean[:batch].numpy()) ** 2).mean())
            assert error < float(((noisy[:batch] - clean[:batch]) ** 2).mean()) / 3
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def test_people_denoise_their_own_pictures_with_the_champion(pipeline, env, tmp_path):
    noisy = load_split(pipeline / "data" / "noisy" / "test.npz").images[:2]
    photo = Image.fromarray(255 - noisy[0]).resize((150, 150))  # dark ink on white, 150 px
    photo.convert("RGB").save(tmp_path / "photo.jpg")
    Image.fromarray(noisy[1]).resize((90, 60)).save(tmp_path / "scan.png")
    (tmp_path / "notes.txt").write_text("not a picture")
    result = run(
        [
            str(BIN / "python"),
            "-m",
            "mnist_ae.denoise",
            str(tmp_path / "photo.jpg"),
            str(tmp_path / "notes.txt"),
            str(tmp_path / "scan.png"),
            "--out",
            str(tmp_path / "out"),
        ],
        pipeline,
        env,
        ok=False,
    )
    assert result.returncode == 1
    assert f"error: {tmp_path / 'notes.txt'}: not a picture this command can read" in result.stderr
    for name in ("photo", "scan"):
        with Image.open(tmp_path / "out" / f"{name}.png") as shown:
            assert shown.size == (57 * 8, 28 * 8)  # input | gap | denoised, 8x
            pixels = np.asarray(shown.convert("L"), dtype=np.float32)[::8, ::8] / 255
        converted, denoised = pixels[:, :28], pixels[:, 29:]
        assert converted.mean() < 0.5 and denoised.mean() < 0.5  # light ink on black, MNIST-like
