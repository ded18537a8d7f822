"""The registry and the champion rule, on a real SQLite store and on the team stack's server
(PostgreSQL behind it): versions exist only with complete outputs, @champion goes only to a
comparable, better version that beats PCA, promotions racing in separate processes leave it on
the best, and a signal between writing the alias and reading it back does not stop it there."""

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import mlflow
import numpy as np
import pytest
from helpers import empty_store
from mlflow.tracking import MlflowClient

from mnist_ae.tracking import champion, registrar, registry, runs, signing, store
from mnist_ae.tracking.registry import Registration


@pytest.fixture
def sqlite_store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(tmp_path)
    empty_store(tmp_path)
    store.connect("test-experiment", tmp_path)
    yield tmp_path
    mlflow.set_tracking_uri(None)


@pytest.fixture(params=["sqlite", "server"])
def any_store(request, tmp_path, monkeypatch):
    """The local SQLite store, or the team stack's tracking server: where the team's champion
    lives. Each test gets a registered model name of its own."""
    if request.param == "server":
        monkeypatch.setenv("MLFLOW_TRACKING_URI", request.getfixturevalue("stack").url("mlflow"))
    else:
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
        empty_store(tmp_path)
    monkeypatch.chdir(tmp_path)
    store.connect("test-experiment", tmp_path)
    yield f"ae-{uuid.uuid4().hex[:8]}"
    mlflow.set_tracking_uri(None)


def new_version(name, psnr=None, complete=True, beats_pca=True, noise="0.4", test="abc") -> str:
    """A registered version as train and promote leave it (without the model files)."""
    client = MlflowClient()
    if not client.search_registered_models(f"name='{name}'"):
        client.create_registered_model(name)
    run_id = client.create_run(mlflow.get_experiment_by_name("test-experiment").experiment_id)
    run_id = run_id.info.run_id
    source = f"runs:/{run_id}/model"  # no files: the rule reads only tags
    version = str(client.create_model_version(name, source=source, run_id=run_id).version)
    tags = {registry.OUTPUTS_TAG: registry.COMPLETE if complete else "pending"}
    if psnr is not None:
        tags |= evaluation(psnr, beats_pca, noise, test)
    registry.tag_version(name, version, tags)
    return version


def evaluation(psnr, beats_pca=True, noise="0.4", test="abc") -> dict:
    return {
        champion.METRIC: str(psnr),
        champion.BEATS_PCA: str(beats_pca).lower(),
        "noise_std": noise,
        "test_digest": test,
    }


def files_check_out(name: str, version: str) -> None:
    """These versions have no files (the rule reads their tags): nothing to refuse."""
    return None


def promote(name: str, version: str) -> champion.Decision:
    return champion.promote(name, version, verify=files_check_out)


def holder(name) -> str | None:
    try:
        return str(MlflowClient().get_model_version_by_alias(name, champion.CHAMPION).version)
    except Exception:
        return None


def test_a_logged_model_is_pending_until_its_outputs_are_complete_checked_and_any_batch(
    sqlite_store, tmp_path
):
    # torch here, not at the top: the racing promotions' processes import this module (spawn)
    # and would each pay 1.6 s for it
    import torch

    from mnist_ae.model.networks import ModelConfig, build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig("conv", 4))
    example = torch.rand(2, 1, 28, 28).numpy()
    with runs.open_run(sqlite_store, None, "r") as run:
        registered = registry.log_and_register_model(
            model, example, "ae", {"device": "cpu"}, registrar.for_store(), {}, "# a card\n"
        )
    version = MlflowClient().get_model_version("ae", registered.version)
    digest, signature = registered.model_sha256, version.tags[signing.SIGNATURE_TAG]
    # the card the training wrote, then the signature the registrar added
    assert version.description.startswith("# a card\n\n## Signature")
    assert f"SHA-256 `{digest}`, Ed25519 signature `{signature}`" in version.description
    assert version.tags == {
        "device": "cpu", registry.OUTPUTS_TAG: "pending", signing.DIGEST_TAG: digest,
        signing.SIGNATURE_TAG: signature,
    }  # fmt: skip
    key = signing.trusted_key(mlflow.get_tracking_uri())
    created = version.creation_timestamp
    assert signing.signature_holds(key, signature, "ae", registered.version, created, digest)
    assert not signing.signature_holds(key, signature, "ae", "2", created, digest)
    assert registry.discard_incomplete_versions("ae", run.info.run_id) == [registered.version]
    assert not MlflowClient().search_model_versions("name='ae'")

    with runs.open_run(sqlite_store, None, "r"):
        calibration = {"threshold": 1.5, "levels": [0.0, 0.4]}
        registered = registry.log_and_register_model(
            model, example, "ae", {}, registrar.for_store(), {"not_a_digit": calibration}, ""
        )
    registry.mark_complete(registered)
    _, local = registry.verified_copy("ae", registered.version, tmp_path / "copy")
    loaded = mlflow.pyfunc.load_model(str(local))
    assert loaded.metadata.metadata == {"not_a_digit": calibration}  # in MLmodel: signed
    for batch in (1, 5):  # the example had 2: the batch dimension stays free
        inputs = torch.rand(batch, 1, 28, 28)
        output = loaded.predict(inputs.numpy())
        assert output.shape == (batch, 1, 28, 28)
        assert np.allclose(output, model(inputs).detach().numpy(), atol=1e-5)
    assert registry.verify("ae", registered.version) is None
    model_id = registered.model_uri.removeprefix("models:/")
    (stored,) = (sqlite_store / "mlruns").rglob(f"{model_id}/**/MLmodel")  # the store's copy
    # a looser not-a-digit threshold in the stored MLmodel: the version is no longer the signed one
    assert "threshold: 1.5" in stored.read_text()
    stored.write_text(stored.read_text().replace("threshold: 1.5", "threshold: 99.0"))
    refused = registry.verify("ae", registered.version)
    assert refused.startswith(f"ae version {registered.version}: its model files have SHA-256")
    assert refused.endswith("changed after registration; refused")
    client = MlflowClient()
    client.set_model_version_tag("ae", registered.version, signing.DIGEST_TAG, "0" * 64)
    assert "its signature does not hold" in registry.verify("ae", registered.version)
    client.delete_model_version_tag("ae", registered.version, signing.SIGNATURE_TAG)
    assert "not signed by the store's registrar" in registry.verify("ae", registered.version)
    by_hand = client.create_model_version("ae", registered.model_uri, run_id=run.info.run_id)
    assert "not signed by the store's registrar" in registry.verify("ae", str(by_hand.version))


def test_the_registrar_registers_only_the_files_the_training_logged(sqlite_store):
    import torch

    from mnist_ae.model.networks import ModelConfig, build_model

    model, example = build_model(ModelConfig("conv", 4)), torch.rand(2, 1, 28, 28).numpy()
    with runs.open_run(sqlite_store, None, "r") as run:
        info = mlflow.pytorch.log_model(model, name="model", input_example=example)
    with pytest.raises(registry.ModelFilesError, match="changed between logging and registering"):
        registrar.for_store().register(
            Registration("ae", info.model_uri, run.info.run_id, "0" * 64)
        )
    with pytest.raises(registry.ModelFilesError, match=f"was logged by run {run.info.run_id}"):
        registrar.for_store().register(Registration("ae", info.model_uri, "another-run", "0" * 64))
    assert not MlflowClient().search_model_versions("name='ae'")  # nothing half-registered


def test_the_champion_is_the_best_eligible_comparable_version(sqlite_store):
    name = "ae"
    decision = promote(name, new_version(name, 23.0, beats_pca=False))
    assert decision.why.endswith("beat PCA at equal code size") and holder(name) is None
    pending = new_version(name, 30.0, complete=False)
    assert "did not complete" in promote(name, pending).why
    first = new_version(name, 20.0)
    assert promote(name, first).promoted and holder(name) == first
    worse = new_version(name, 19.0)
    decision = promote(name, worse)
    assert not decision.promoted and "20.000 dB >= 19.000 dB" in decision.why
    better = new_version(name, 21.0)
    assert promote(name, better).promoted and holder(name) == better
    assert promote(name, better).promoted  # again: still the champion
    tie = new_version(name, 21.0)
    assert not promote(name, tie).promoted and holder(name) == better  # the older keeps it


@pytest.mark.parametrize(("noise", "test"), [("0.5", "abc"), ("0.4", "other-test-set")])
def test_versions_evaluated_on_other_noise_or_test_sets_are_not_compared(sqlite_store, noise, test):
    first = new_version("ae", 20.0)
    promote("ae", first)
    decision = promote("ae", new_version("ae", 25.0, noise=noise, test=test))
    assert not decision.promoted and holder("ae") == first
    assert f"not comparable with champion version {first}" in decision.why


def _promote(args) -> bool:
    """One promotion, as the promote stage does it, in its own process."""
    root, uri, name, version, psnr, barrier = args
    os.chdir(root)
    if uri:
        os.environ["MLFLOW_TRACKING_URI"] = uri
    store.connect("test-experiment", Path(root))
    barrier.wait()  # every promotion tags and promotes at the same moment
    registry.tag_version(name, version, evaluation(psnr))
    return promote(name, version).promoted


@pytest.mark.services
def test_two_promotions_at_once_leave_the_champion_on_the_best(any_store, tmp_path):
    name, uri = any_store, os.environ.get("MLFLOW_TRACKING_URI", "")
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(2) as pool:
        for round_ in range(4):
            scores = [20.0 + round_ + 0.5, 20.0 + round_ + 0.25][:: 1 if round_ % 2 else -1]
            versions = [new_version(name) for _ in scores]  # complete, not evaluated yet
            barrier = manager.Barrier(2)
            promoted = pool.map(
                _promote,
                [
                    (tmp_path, uri, name, v, s, barrier)
                    for v, s in zip(versions, scores, strict=True)
                ],
            )
            best = versions[scores.index(max(scores))]
            assert holder(name) == best, f"round {round_}: {scores} -> {holder(name)}"
            assert promoted[versions.index(best)] is True


# A promotion that read a stale list of versions (the better one not yet eligible), wrote the
# alias onto its own worse version, and got SIGTERM at that instant, before reading it back.
STALE_AND_STOPPED = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient
    from mnist_ae.plumbing import signals
    from mnist_ae.tracking import champion, store

    name, version, hidden = sys.argv[1:4]
    store.connect("test-experiment", Path.cwd())
    signals.install()
    client = MlflowClient
    listing, holder = client.search_model_versions, client.get_model_version_by_alias
    set_alias, rounds, writes = client.set_registered_model_alias, [], []

    def stale_listing(self, *args, **kwargs):  # the first round misses the better version
        rounds.append(1)
        found = listing(self, *args, **kwargs)
        return [v for v in found if str(v.version) != hidden] if len(rounds) == 1 else found

    def no_champion_yet(self, *args, **kwargs):
        if len(rounds) == 1:
            raise MlflowException("no alias yet")
        return holder(self, *args, **kwargs)

    def stopped_after_writing(self, *args, **kwargs):
        set_alias(self, *args, **kwargs)
        print("alias written:", args[-1], flush=True)
        writes.append(1)
        if len(writes) == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    client.search_model_versions = stale_listing
    client.get_model_version_by_alias = no_champion_yet
    client.set_registered_model_alias = stopped_after_writing
    try:
        print(champion.promote(name, version, verify=lambda *_: None).why)
    except signals.Interrupted as stop:
        print("stopped:", stop)
        sys.exit(stop.exit_status)
""")


def test_a_signal_between_writing_the_alias_and_reading_it_back_waits_for_the_right_one(
    sqlite_store,
):
    better, worse = new_version("ae", 22.0), new_version("ae", 21.0)
    done = subprocess.run(
        [sys.executable, "-c", STALE_AND_STOPPED, "ae", worse, better],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 128 + signal.SIGTERM, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    # It wrote its own, worse version first (the stale view), then, the signal waiting, the
    # better one it read on the next round; only then did the signal stop it.
    assert lines[0] == f"alias written: {worse}" and f"alias written: {better}" in lines
    assert lines[-1] == "stopped: interrupted by SIGTERM"
    assert holder("ae") == better


def test_a_version_whose_files_do_not_check_out_is_refused_and_never_left_champion(sqlite_store):
    good, tampered = new_version("ae", 20.0), new_version("ae", 22.0)

    def verify(name: str, version: str) -> str | None:
        return (
            "its model files changed after registration; refused" if version == tampered else None
        )

    decision = champion.promote("ae", tampered, verify=verify)
    assert not decision.promoted and decision.why.endswith("changed after registration; refused")
    assert holder("ae") == good  # the next best whose files check out
    MlflowClient().set_registered_model_alias("ae", champion.CHAMPION, tampered)  # a bad tag
    assert champion.promote("ae", good, verify=verify).promoted and holder("ae") == good
    only_bad = new_version("ae", 25.0, test="another-test-set")
    MlflowClient().set_registered_model_alias("ae", champion.CHAMPION, only_bad)
    refuse_all = lambda *_: "refused"  # noqa: E731
    assert not champion.promote("ae", only_bad, verify=refuse_all).promoted
    assert holder("ae") is None  # no alias rather than one on refused files
