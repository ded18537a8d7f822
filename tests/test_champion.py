"""The registry and the champion rule on a real MLflow SQLite store: versions exist only with
complete outputs, @champion goes only to a comparable, better version that beats PCA, and
evaluations racing in separate processes leave it on the best."""

import multiprocessing
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from mnist_ae import champion, registry, tracking
from mnist_ae.models import ModelConfig, build_model

NAME = "ae"


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(tmp_path)
    tracking.setup("test-experiment")
    yield tmp_path
    mlflow.set_tracking_uri(None)


def new_version(psnr=None, complete=True, beats_pca=True, noise="0.4", test="abc") -> str:
    """A registered version as train and evaluate leave it (without the model files)."""
    client = MlflowClient()
    if not client.search_registered_models(f"name='{NAME}'"):
        client.create_registered_model(NAME)
    version = str(client.create_model_version(NAME, source=str(Path.cwd())).version)
    tags = {registry.OUTPUTS_TAG: registry.COMPLETE if complete else "pending"}
    if psnr is not None:
        tags |= {
            champion.METRIC: str(psnr),
            champion.BEATS_PCA: str(beats_pca).lower(),
            "noise_std": noise,
            "test_digest": test,
        }
    registry.tag_version(NAME, version, tags)
    return version


def holder() -> str | None:
    try:
        return str(MlflowClient().get_model_version_by_alias(NAME, champion.CHAMPION).version)
    except Exception:
        return None


def test_a_logged_model_is_pending_until_its_outputs_are_complete_and_serves_any_batch(store):
    torch.manual_seed(0)
    model = build_model(ModelConfig("conv", 4))
    example = torch.rand(2, 1, 28, 28).numpy()
    with tracking.open_run(None, "r") as run:
        registered = registry.log_and_register_model(model, example, NAME, {"device": "cpu"})
    version = MlflowClient().get_model_version(NAME, registered.version)
    assert version.tags == {"device": "cpu", registry.OUTPUTS_TAG: "pending"}
    assert registry.discard_incomplete_versions(NAME, run.info.run_id) == [registered.version]
    assert not MlflowClient().search_model_versions(f"name='{NAME}'")

    with tracking.open_run(None, "r"):
        registered = registry.log_and_register_model(model, example, NAME, {})
    registry.mark_complete(registered)
    loaded = mlflow.pyfunc.load_model(f"models:/{NAME}/{registered.version}")
    for batch in (1, 5):  # the example had 2: the batch dimension stays free
        inputs = torch.rand(batch, 1, 28, 28)
        output = loaded.predict(inputs.numpy())
        assert output.shape == (batch, 1, 28, 28)
        assert np.allclose(output, model(inputs).detach().numpy(), atol=1e-5)


def test_the_champion_is_the_best_eligible_comparable_version(store):
    assert champion.promote(NAME, new_version(23.0, beats_pca=False)).why.endswith(
        "beat PCA at equal code size"
    )
    assert holder() is None
    pending = new_version(30.0, complete=False)
    assert "did not complete" in champion.promote(NAME, pending).why
    first = new_version(20.0)
    assert champion.promote(NAME, first).promoted and holder() == first
    worse = new_version(19.0)
    decision = champion.promote(NAME, worse)
    assert not decision.promoted and "20.000 dB >= 19.000 dB" in decision.why
    better = new_version(21.0)
    assert champion.promote(NAME, better).promoted and holder() == better
    assert champion.promote(NAME, better).promoted  # again: still the champion
    tie = new_version(21.0)
    assert not champion.promote(NAME, tie).promoted and holder() == better  # the older keeps it


@pytest.mark.parametrize(("noise", "test"), [("0.5", "abc"), ("0.4", "other-test-set")])
def test_versions_evaluated_on_other_noise_or_test_sets_are_not_compared(store, noise, test):
    first = new_version(20.0)
    champion.promote(NAME, first)
    decision = champion.promote(NAME, new_version(25.0, noise=noise, test=test))
    assert not decision.promoted and holder() == first
    assert f"not comparable with champion version {first}" in decision.why


def _evaluate(args) -> bool:
    """One evaluation's registry part, as the evaluate stage does it, in its own process."""
    root, version, psnr, barrier = args
    import os

    os.chdir(root)
    tracking.setup("test-experiment")
    barrier.wait()  # every evaluation tags and promotes at the same moment
    registry.tag_version(
        NAME,
        version,
        {
            champion.METRIC: psnr,
            champion.BEATS_PCA: "true",
            "noise_std": "0.4",
            "test_digest": "abc",
        },
    )
    return champion.promote(NAME, version).promoted


def test_two_evaluations_at_once_leave_the_champion_on_the_best(store):
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(2) as pool:
        for round_ in range(4):
            scores = [20.0 + round_ + 0.5, 20.0 + round_ + 0.25][:: 1 if round_ % 2 else -1]
            versions = [new_version() for _ in scores]  # complete, not evaluated yet
            barrier = manager.Barrier(2)
            promoted = pool.map(
                _evaluate, [(store, v, s, barrier) for v, s in zip(versions, scores, strict=True)]
            )
            best = versions[scores.index(max(scores))]
            assert holder() == best, f"round {round_}: {scores} -> {holder()}"
            assert promoted[versions.index(best)] is True
