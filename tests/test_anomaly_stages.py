"""download-fashion and anomaly as DVC runs them, when Fashion-MNIST cannot be had: a clear
message, success, and a report that says the analysis was skipped."""

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import yaml
from helpers import clean_env, make_split

from mnist_ae import tracking
from mnist_ae.checkpoints import save_checkpoint
from mnist_ae.datasets import OOD_MISSING, save_split
from mnist_ae.models import ModelConfig, build_model

REPO = Path(__file__).resolve().parents[1]


def stage(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = clean_env()
    command = [
        sys.executable,
        str(REPO / "stages" / f"{name}.py"),
        "--params",
        "params.yaml",
        *args,
    ]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_without_fashion_mnist_the_analysis_is_skipped_and_the_pipeline_goes_on(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["anomaly"] |= {"source": "local", "local_dir": str(tmp_path / "nowhere")}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")

    fetched = stage(
        "download_fashion", "--out", "data/fashion", "--record", "available.json", cwd=tmp_path
    )
    assert fetched.returncode == 0, fetched.stderr
    assert "Fashion-MNIST unavailable, the anomaly analysis will be skipped" in fetched.stdout
    note = (tmp_path / "data" / "fashion" / OOD_MISSING).read_text()
    assert "nowhere is not a directory" in note

    processed = tmp_path / "data" / "processed"
    processed.mkdir(parents=True)
    for name in ("val", "test"):
        save_split(processed / f"{name}.npz", make_split(20))
    (tmp_path / "models").mkdir()
    save_checkpoint(
        tmp_path / "models" / "model.pt",
        build_model(ModelConfig("conv", 4)),
        ModelConfig("conv", 4),
    )
    previous = os.getcwd()
    os.chdir(tmp_path)
    try:
        tracking.setup(params["mlflow"]["experiment"], tmp_path)
        with mlflow.start_run() as run:
            pass
    finally:
        mlflow.set_tracking_uri(None)
        os.chdir(previous)
    (tmp_path / "models" / "run.json").write_text(json.dumps({"run_id": run.info.run_id}))

    analysed = stage(
        "anomaly",
        "--processed",
        "data/processed",
        "--fashion",
        "data/fashion",
        "--model",
        "models",
        "--out",
        "reports/anomaly",
        cwd=tmp_path,
    )
    assert analysed.returncode == 0, analysed.stderr
    assert "anomaly analysis skipped: Fashion-MNIST unavailable" in analysed.stdout
    report = json.loads((tmp_path / "reports" / "anomaly" / "metrics.json").read_text())
    assert report == {"ood_available": False}
    assert (tmp_path / "reports" / "anomaly" / "scores.png").stat().st_size > 0


def test_fashion_mnist_that_becomes_available_is_picked_up_by_the_next_dvc_repro(tmp_path):
    """Real DVC: after a run without Fashion-MNIST, anomaly marks the note read, which keeps
    download-fashion changed, so the next `dvc repro` tries again and gets the files."""
    from mnist_ae.anomaly import mark_note_read

    debian = Path("/usr/share/datasets/fashion-mnist")  # .ci/run installs it
    source = tmp_path / "fashion-source"
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["anomaly"] |= {"source": "local", "local_dir": str(source)}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["download-fashion"]
    stage["cmd"] = stage["cmd"].replace("python stages/", f"{sys.executable} {REPO}/stages/")
    del stage["deps"]  # the code and check-params are not part of this small repository
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"download-fashion": stage}}))
    env = clean_env()
    dvc = [str(Path(sys.executable).parent / "dvc")]

    def run(*args: str) -> str:
        done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    run("git", "init", "-q")
    run(*dvc, "init", "-q")
    run(*dvc, "repro")
    note = tmp_path / "data" / "fashion" / OOD_MISSING
    assert note.is_file() and "Data and pipelines are up to date" in run(*dvc, "status")
    mark_note_read(note)  # what anomaly does when it finds the note
    source.mkdir()
    for path in debian.iterdir():  # the source delivers now
        (source / path.name).write_bytes(path.read_bytes())
    assert "download-fashion" in run(*dvc, "status")
    run(*dvc, "repro")
    assert (tmp_path / "data" / "fashion" / "test.npz").is_file() and not note.exists()
    record = tmp_path / "reports" / "download_fashion" / "available.json"
    assert json.loads(record.read_text()) == {"available": True}
    assert "Data and pipelines are up to date" in run(*dvc, "status")
