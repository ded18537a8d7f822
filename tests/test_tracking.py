from pathlib import Path

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient

from mnist_ae import tracking


def test_repo_root_resolves_dvc_experiment_copies_to_the_main_repository(tmp_path):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    work = tmp_path / ".dvc" / "tmp" / "exps" / "tmpab12cd"
    work.mkdir(parents=True)
    (work / "dvc.yaml").write_text("stages: {}\n")  # the copy has its own dvc.yaml
    assert tracking.repo_root(work) == tmp_path.resolve()
    assert tracking.repo_root(tmp_path / "stages") == tmp_path.resolve()


def test_tracking_uri_defaults_to_sqlite_in_the_repo_unless_set(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.tracking_uri(tmp_path) == f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert tracking.tracking_uri(tmp_path) == "http://mlflow.example:5000"


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A real MLflow SQLite store in a temporary 'repository'."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(tmp_path)
    tracking.setup("test-experiment")
    yield tmp_path
    mlflow.set_tracking_uri(None)


def test_experiment_artifacts_go_to_mlruns_at_the_repo_root(store):
    experiment = mlflow.get_experiment_by_name("test-experiment")
    location = experiment.artifact_location.removeprefix("file://")
    assert Path(location).is_relative_to(store / "mlruns")
    assert (store / "mlflow.db").is_file()


def test_run_named_after_the_dvc_experiment_with_tags(store, monkeypatch):
    monkeypatch.setenv("DVC_EXP_NAME", "crisp-tern")
    tags = tracking.run_tags(torch.device("cpu"), "cpu", "abc123")
    with tracking.start_training_run({"train.lr": 0.001}, tags) as run:
        pass
    stored = MlflowClient().get_run(run.info.run_id)
    assert stored.info.run_name == "crisp-tern"
    assert stored.data.params == {"train.lr": "0.001"}
    assert stored.data.tags["dataset_digest"] == "abc123"
    assert stored.data.tags["device"] == "cpu" and stored.data.tags["gpu_name"] == "none"
    assert stored.data.tags["torch_version"] == torch.__version__


def test_later_stages_add_params_once_and_record_changes_as_tags(store):
    with tracking.start_training_run({"train.lr": 0.001}, {}) as run:
        pass
    with tracking.resume_run(run.info.run_id):
        tracking.log_params_once({"evaluate.batch_size": 100})
    with tracking.resume_run(run.info.run_id):
        tracking.log_params_once({"evaluate.batch_size": 200})
    stored = MlflowClient().get_run(run.info.run_id).data
    assert stored.params["evaluate.batch_size"] == "100"
    assert stored.tags["rerun.evaluate.batch_size"] == "200"


def test_resuming_an_unknown_run_says_how_to_recover(store):
    with (
        pytest.raises(tracking.TrackingError, match="dvc repro --force train"),
        tracking.resume_run("0" * 32),
    ):
        pass


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "missing; run the train stage"),
        ("{", "not valid JSON"),
        ('{"version": "1"}', "no run_id"),
    ],
)
def test_a_bad_run_record_is_named_with_the_way_to_recover(tmp_path, content, message):
    path = tmp_path / tracking.RUN_RECORD
    if content is not None:
        path.write_text(content)
    with pytest.raises(tracking.TrackingError, match=message) as raised:
        tracking.read_run_record(path)
    assert str(path) in str(raised.value)


def test_run_record_round_trips(tmp_path):
    path = tmp_path / tracking.RUN_RECORD
    path.write_text('{"run_id": "abc", "registered_model": "m", "version": "3"}')
    assert tracking.read_run_record(path) == {
        "run_id": "abc",
        "registered_model": "m",
        "version": "3",
    }


def new_version(name: str, psnr: float | None = None) -> str:
    client = MlflowClient()
    if not client.search_registered_models(f"name='{name}'"):
        client.create_registered_model(name)
    version = str(client.create_model_version(name, source=str(Path.cwd()), run_id=None).version)
    if psnr is not None:
        client.set_model_version_tag(name, version, tracking.CHAMPION_METRIC, str(psnr))
    return version


def champion(name: str) -> str | None:
    found = tracking.current_champion(name)
    return str(found.version) if found else None


def test_champion_alias_moves_only_to_a_better_model_that_beats_pca(store):
    name = "ae"
    v1 = new_version(name, 20.0)
    assert tracking.promote_if_better(name, v1, 20.0, beats_pca=False)[0] is False
    assert champion(name) is None
    assert tracking.promote_if_better(name, v1, 20.0, beats_pca=True)[0] is True
    assert champion(name) == v1
    v2 = new_version(name, 19.0)
    promoted, why = tracking.promote_if_better(name, v2, 19.0, beats_pca=True)
    assert not promoted and "20.000 dB" in why and champion(name) == v1
    v3 = new_version(name, 21.0)
    assert tracking.promote_if_better(name, v3, 21.0, beats_pca=True)[0] is True
    assert champion(name) == v3
    promoted, why = tracking.promote_if_better(name, v3, 21.0, beats_pca=True)
    assert promoted and "already the champion" in why


def test_logged_model_denoises_a_batch_through_pyfunc(store):
    torch.manual_seed(0)
    from mnist_ae.models import ModelConfig, build_model

    model = build_model(ModelConfig("conv", 4))
    example = torch.rand(2, 1, 28, 28).numpy()
    with tracking.start_training_run({}, {}):
        registered = tracking.log_and_register_model(model, example, "ae", {"device": "cpu"})
    assert registered.version == "1"
    version = MlflowClient().get_model_version("ae", "1")
    assert version.tags["device"] == "cpu"
    loaded = mlflow.pyfunc.load_model(f"models:/ae/{registered.version}")
    batch = torch.rand(5, 1, 28, 28)
    output = loaded.predict(batch.numpy())
    assert output.shape == (5, 1, 28, 28)
    assert torch.allclose(torch.from_numpy(output), model(batch).detach(), atol=1e-5)
    assert Path(store / "mlruns").is_dir()
