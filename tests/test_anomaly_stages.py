"""download-fashion and anomaly as DVC runs them: when Fashion-MNIST cannot be had, a clear
message, success, and a report that says the analysis was skipped; with `data.test_limit`, a
subset of it."""

import json
import os
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
import yaml
from helpers import REPO, make_split, run, run_stage

from mnist_ae.analysis import not_a_digit
from mnist_ae.data.sources import fetch_fashion
from mnist_ae.data.splits import OOD_MISSING, load_split, save_split
from mnist_ae.model.model_file import save_model
from mnist_ae.model.networks import ModelConfig, build_model
from mnist_ae.plumbing.outputs import write_json
from mnist_ae.tracking import store
from mnist_ae.tracking.run_record import RunRecord

pytestmark = pytest.mark.pipeline  # stage scripts, and dvc repro
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")  # .ci/run installs it


def test_without_fashion_mnist_the_analysis_is_skipped_and_the_pipeline_goes_on(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["anomaly"] |= {"source": "local", "local_dir": str(tmp_path / "nowhere")}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")

    fetched = run_stage("download-fashion", tmp_path)
    assert fetched.returncode == 0, fetched.stderr
    assert "Fashion-MNIST unavailable, the anomaly analysis will be skipped" in fetched.stdout
    note = (tmp_path / "data" / "fashion" / OOD_MISSING).read_text()
    assert "nowhere is not a directory" in note

    for folder in ("processed", "noisy"):
        (tmp_path / "data" / folder).mkdir(parents=True)
        for name in ("val", "test"):
            save_split(tmp_path / "data" / folder / f"{name}.npz", make_split(20))
    (tmp_path / "models").mkdir()
    config = ModelConfig("conv", 4)
    model = build_model(config)
    weights = save_model(tmp_path / "models" / "model.pt", model, config)
    val = make_split(20).images[:, None].astype(np.float32) / 255

    def denoise(images):
        with torch.no_grad():
            return model(torch.from_numpy(images)).numpy()

    levels = {0.0: val, 0.4: np.clip(val + 0.3, 0, 1)}
    calibration = not_a_digit.calibrate({k: (x, denoise(x)) for k, x in levels.items()}, 0.05)
    write_json(tmp_path / "models" / not_a_digit.FILE, calibration.as_dict())
    previous = os.getcwd()
    os.chdir(tmp_path)
    try:
        store.connect(params["mlflow"]["experiment"], tmp_path)
        with mlflow.start_run() as training:
            pass
    finally:
        mlflow.set_tracking_uri(None)
        os.chdir(previous)
    record = RunRecord(training.info.run_id, "ae", "1", "models:/m-0", weights, "none", "key")
    record.write(tmp_path / "models" / "run.json")

    analysed = run_stage("anomaly", tmp_path)
    assert analysed.returncode == 0, analysed.stderr
    assert "anomaly analysis skipped: Fashion-MNIST unavailable" in analysed.stdout
    report = json.loads((tmp_path / "reports" / "anomaly" / "metrics.json").read_text())
    # the version's verdict is still measured on what there is: all but the garments
    shares = report.pop("not_a_digit")
    assert report == {"ood_available": False}
    assert set(shares) == {"mnist_clean", "mnist_noisy", "letters_clean", "letters_noisy",
                           "uniform_noise", "noise_alone"}  # fmt: skip
    assert all(0 <= share <= 1 for share in shares.values())
    assert (tmp_path / "reports" / "anomaly" / "scores.png").stat().st_size > 0


def test_a_test_limit_takes_a_stratified_seeded_subset_of_fashion_mnist_too(tmp_path):
    """Quick runs score 1,000 MNIST test digits against 1,000 Fashion-MNIST images, not 10,000."""
    arrays, _ = fetch_fashion("local", str(DEBIAN_FASHION))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["anomaly"] |= {"source": "local", "local_dir": str(DEBIAN_FASHION)}
    params["data"]["test_limit"] = 1000
    subsets = []
    for name in ("first", "again"):
        root = tmp_path / name
        root.mkdir()
        (root / "params.yaml").write_text(yaml.safe_dump(params))
        fetched = run_stage("download-fashion", root)
        assert fetched.returncode == 0 and "test set (1,000) verified" in fetched.stdout
        subsets.append(load_split(root / "data" / "fashion" / "test.npz"))
    first, again = subsets
    assert np.bincount(first.labels).tolist() == [100] * 10  # the full set has 1,000 of each
    assert np.array_equal(first.images, again.images)  # the seed from params: the same subset
    full = {image.tobytes() for image in arrays["test_images"]}
    assert all(image.tobytes() in full for image in first.images)


def test_fashion_mnist_that_becomes_available_is_picked_up_by_the_next_dvc_repro(tmp_path):
    """Real DVC: after a run without Fashion-MNIST, anomaly marks the note read, which keeps
    download-fashion changed, so the next `dvc repro` tries again and gets the files."""
    from mnist_ae.analysis.anomaly import mark_note_read

    source = tmp_path / "fashion-source"
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["anomaly"] |= {"source": "local", "local_dir": str(source)}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["download-fashion"]
    stage["cmd"] = stage["cmd"].replace("python stages/", f"{sys.executable} {REPO}/stages/")
    del stage["deps"]  # the code and check-params are not part of this small repository
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"download-fashion": stage}}))

    def dvc(*args: str) -> str:
        return run(["dvc", *args], tmp_path).stdout

    run(["git", "init", "-q"], tmp_path)
    dvc("init", "-q")
    dvc("repro")
    note = tmp_path / "data" / "fashion" / OOD_MISSING
    assert note.is_file() and "Data and pipelines are up to date" in dvc("status")
    mark_note_read(note)  # what anomaly does when it finds the note
    source.mkdir()
    for path in DEBIAN_FASHION.iterdir():  # the source delivers now
        (source / path.name).write_bytes(path.read_bytes())
    assert "download-fashion" in dvc("status")
    dvc("repro")
    assert (tmp_path / "data" / "fashion" / "test.npz").is_file() and not note.exists()
    record = tmp_path / "reports" / "download_fashion" / "available.json"
    assert json.loads(record.read_text()) == {"available": True}
    assert "Data and pipelines are up to date" in dvc("status")
