"""Broken files and bad settings against the real stage scripts, run as dvc.yaml runs them: each
fault gives one line naming the file or key, a non-zero status, no traceback, no half-written
output, and every output of the last good run untouched; a later stage that fails records it in
its own MLflow run and leaves the training's run FINISHED. The faults run concurrently."""

from __future__ import annotations

import contextlib
import hashlib
import resource
import shutil
import signal
import sqlite3
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
import yaml
from helpers import clean_env, run_stage, stage_checkout, stage_command
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.stages


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_a_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) * 2 // 3] ^= 0x10
    path.write_bytes(bytes(data))


def garble(path: Path) -> None:
    path.write_text('{"code_size": 32, "test_psnr_db": ')


def set_param(root: Path, section: str, key: str, value) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params[section][key] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params))


@contextlib.contextmanager
def locked_store(root: Path):
    """Another process in the middle of a write to the MLflow store."""
    holder = sqlite3.connect(root / "mlflow.db", timeout=0)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        holder.rollback()
        holder.close()


def file_size_limit(limit: int) -> Callable[[], None]:
    """A disk that fills: writes past `limit` bytes fail (EFBIG) in the stage's process."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@dataclass(frozen=True)
class Fault:
    stage: str
    damage: Callable[[Path], object]
    named: tuple[str, ...]  # what the error line must contain
    during: Callable[[Path], contextlib.AbstractContextManager] = lambda root: (
        contextlib.nullcontext()
    )
    before_exec: Callable[[], None] | None = None


FAULTS = {
    "truncated training split": Fault(
        "train", lambda r: truncate(r / "data/processed/train.npz"), ("data/processed/train.npz",)
    ),
    "bit-flipped noisy test split": Fault(
        "evaluate", lambda r: flip_a_bit(r / "data/noisy/test.npz"), ("data/noisy/test.npz",)
    ),
    "truncated model.pt": Fault(
        "evaluate", lambda r: truncate(r / "models/model.pt"), ("models/model.pt",)
    ),
    "bit-flipped model.pt": Fault(
        "latent", lambda r: flip_a_bit(r / "models/model.pt"), ("models/model.pt",)
    ),
    "corrupt run.json": Fault("latent", lambda r: garble(r / "models/run.json"), ("run.json",)),
    "corrupt evaluate metrics.json": Fault(
        "promote",
        lambda r: garble(r / "reports/evaluate/metrics.json"),
        ("reports/evaluate/metrics.json", "dvc repro --force evaluate"),
    ),
    "truncated compare-pca table": Fault(
        "promote",
        lambda r: truncate(r / "reports/compare_pca/pca.csv"),
        ("reports/compare_pca/pca.csv", "dvc repro --force compare-pca"),
    ),
    "corrupt mlflow.db": Fault(
        "train",
        lambda r: (r / "mlflow.db").write_bytes(b"not SQLite at all" * 4096),
        ("mlflow.db", "not a readable SQLite database"),
    ),
    "locked mlflow.db": Fault(
        "train", lambda r: None, ("mlflow.db", "locked by another process"), during=locked_store
    ),
    "train.device cuda without a GPU": Fault(
        "check-params", lambda r: set_param(r, "train", "device", "cuda"), ("train.device", "cuda")
    ),
    "disk full while writing noisy splits": Fault(
        "add-noise", lambda r: None, ("data/noisy",), before_exec=file_size_limit(100_000)
    ),
}


def snapshot(root: Path) -> dict[str, str]:
    """Every file of the checkout but the MLflow store (runs may be marked failed there)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith("mlflow.db")
    }


@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> Path:
    """A checkout after a successful train, evaluate, compare-pca, anomaly and promote (one
    epoch on 500 images; Fashion-MNIST, 1,000 of its test images, from Debian's package)."""
    root = stage_checkout(tmp_path_factory.mktemp("faults") / "good", 500, epochs=1, batch_size=50)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["anomaly"]["source"], params["data"]["test_limit"] = "debian", 1000
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    stages = ("check-params", "train", "evaluate", "compare-pca", "download-fashion", "anomaly")
    for stage in (*stages, "promote"):
        done = run_stage(stage, root)
        assert done.returncode == 0, done.stderr
    return root


@pytest.fixture(scope="module")
def outcomes(good_run, tmp_path_factory):
    """Each fault applied to its own copy of the good checkout, its stage run; all at once."""
    base = tmp_path_factory.mktemp("faulty")

    def inject(name: str):
        fault = FAULTS[name]
        root = base / name.replace(" ", "-")
        shutil.copytree(good_run, root)
        fault.damage(root)
        before = snapshot(root)
        with fault.during(root):
            done = subprocess.run(
                stage_command(fault.stage),
                cwd=root,
                env=clean_env(),
                capture_output=True,
                text=True,
                timeout=240,
                preexec_fn=fault.before_exec,
            )
        return root, before, done

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(FAULTS, pool.map(inject, FAULTS), strict=True))


@pytest.mark.parametrize("name", FAULTS)
def test_a_fault_is_one_clear_line_and_costs_no_output(outcomes, name):
    root, before, done = outcomes[name]
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    message = done.stderr[done.stderr.rindex("error: ") :]  # the line, and listed keys if any
    print(f"{name}: {message.strip()}")  # shown with pytest -rA: the table in the README
    assert done.stderr.strip().endswith(message.strip()) and "\nerror: " not in message
    for words in FAULTS[name].named:
        assert words in message, message
    assert snapshot(root) == before  # earlier outputs intact, nothing half-written beside them


def test_a_failed_evaluation_is_its_own_failed_run_and_the_training_stays_finished(outcomes):
    root, _, done = outcomes["bit-flipped noisy test split"]
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    try:
        client = MlflowClient()
        experiment = client.get_experiment_by_name("mnist-autoencoder")
        found = client.search_runs([experiment.experiment_id], order_by=["start_time ASC"])
        by_stage = {}
        for found_run in found:
            by_stage.setdefault(found_run.data.tags.get("mnist_ae.stage", "train"), []).append(
                found_run
            )
    finally:
        mlflow.set_tracking_uri(None)
    (training,) = by_stage["train"]
    assert training.info.status == "FINISHED" and "mnist_ae.error" not in training.data.tags
    good, failed = by_stage["evaluate"]
    assert (good.info.status, failed.info.status) == ("FINISHED", "FAILED")
    assert "data/noisy/test.npz" in failed.data.tags["mnist_ae.error"]
    assert failed.data.tags["mlflow.parentRunId"] == training.info.run_id
    assert failed.data.tags["mnist_ae.error"] in done.stderr  # the line the user saw


# The train stage's command, with a line at exit saying whether torch and MLflow were imported.
IMPORTED_AT_EXIT = (
    "import atexit, runpy, sys; atexit.register(lambda: print('imported:', *(m in sys.modules "
    "for m in ('torch', 'mlflow')), file=sys.stderr)); sys.argv = sys.argv[1:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


@pytest.mark.parametrize("name", ["truncated training split", "corrupt mlflow.db"])
def test_the_train_stage_names_a_broken_split_or_store_before_importing_torch_or_mlflow(
    good_run, tmp_path, name
):
    root = shutil.copytree(good_run, tmp_path / "repo")
    FAULTS[name].damage(root)
    python, *command = stage_command("train")
    done = subprocess.run([python, "-c", IMPORTED_AT_EXIT, *command], cwd=root, env=clean_env(),
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 1 and FAULTS[name].named[0] in done.stderr, done.stderr
    assert done.stderr.strip().endswith("imported: False False"), done.stderr
