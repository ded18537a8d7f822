"""The model registry: each training's model as a new version, tagged with what it is and whether
the train stage's outputs exist for it ("pending" until they are published, then "complete").

No tag alone can choose what runs on a user's machine: the registrar (tracking.registrar) signs
each version's number, creation time and the SHA-256 of its files when it registers it, and every
place that loads a version (the champion rule, denoise, serve) checks the signature with the
store's public key, downloads the files and compares them with the signed digest, and refuses
a mismatch before anything is loaded.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import mlflow
import numpy as np
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from mnist_ae.plumbing.digests import sha256_tree
from mnist_ae.plumbing.errors import PipelineError
from mnist_ae.tracking import signing
from mnist_ae.tracking.store import TrackingError

if TYPE_CHECKING:
    import torch

OUTPUTS_TAG = "outputs"  # "pending" from registration until train's outputs are published
COMPLETE = "complete"
WEIGHTS_TAG = "weights_sha256"  # of the trained weights: on the training's run and its version
# written by MLflow into each download (the name and version it was fetched as), not stored
_DOWNLOAD_NOTE = ("registered_model_meta",)


class ModelFilesError(PipelineError, ValueError):
    """A registered version is unsigned, its signature does not hold, or its files are not the
    ones it signs."""


@dataclass(frozen=True)
class Decision:
    """What the champion rule made of a version."""

    promoted: bool  # this version holds @champion now
    why: str


@dataclass(frozen=True)
class Registration:
    """A request to register the logged model `model_uri` of run `run_id` as a new version of
    `name`: its files' SHA-256 as the training computed it, its tags, its model card."""

    name: str
    model_uri: str
    run_id: str
    digest: str
    tags: Mapping[str, str] = field(default_factory=dict)
    description: str = ""


class AnyRegistrar(Protocol):
    """What registers and signs versions and runs the champion rule (tracking.registrar: in
    this process with the local store's key, or the stack's service)."""

    def register(self, request: Registration) -> str: ...

    def promote(self, name: str, version: str) -> Decision: ...


@dataclass(frozen=True)
class RegisteredModel:
    model_uri: str
    name: str
    version: str
    model_sha256: str


def log_and_register_model(
    model: torch.nn.Module,
    example: np.ndarray,
    registered_name: str,
    tags: Mapping[str, Any],
    registrar: AnyRegistrar,
    metadata: Mapping[str, Any],
    card: str,
) -> RegisteredModel:
    """Log the model (torch.export format, float32 N x 1 x 28 x 28 in [0, 1] in and out) with
    `metadata` in its MLmodel file (so the files' digest, and the signature, cover it) and have
    the registrar register and sign it as a new version tagged with `tags` and outputs
    "pending", described by the model card `card`. The example is a numpy batch of at least 2:
    MLflow then keeps the pyfunc flavor and a free batch size."""
    import torch  # here only: the champion rule, promote and serve run without it

    model = model.to("cpu").eval()
    with torch.no_grad():
        output = model(torch.from_numpy(example)).numpy()
    info = mlflow.pytorch.log_model(
        model,
        name="model",
        signature=infer_signature(example, output),
        input_example=example,
        metadata=dict(metadata),
        # A torch.export model needs only torch to run; inferring this costs ~10 s.
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
    )
    with tempfile.TemporaryDirectory(prefix="logged-model-") as copy:
        _, digest = download_with_digest(info.model_uri, Path(copy))
    run_id = mlflow.active_run().info.run_id
    tags = {key: str(value) for key, value in tags.items()}
    request = Registration(registered_name, info.model_uri, run_id, digest, tags, card)
    version = registrar.register(request)
    return RegisteredModel(info.model_uri, registered_name, version, digest)


def download_with_digest(uri: str, into: Path) -> tuple[Path, str]:
    """A model's files downloaded into `into`, and the SHA-256 of them all."""
    local = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(into)))
    return local, sha256_tree(local, _DOWNLOAD_NOTE)


def tag_version(name: str, version: str, tags: Mapping[str, Any]) -> None:
    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value))


def describe(name: str, version: str, describe_as: Callable[[str], str]) -> None:
    """Replace the version's description (its model card) with `describe_as(the current one)`."""
    client = MlflowClient()
    card = client.get_model_version(name, version).description or ""
    client.update_model_version(name, version, description=describe_as(card))


def mark_complete(registered: RegisteredModel) -> None:
    tag_version(registered.name, registered.version, {OUTPUTS_TAG: COMPLETE})


def delete_version(name: str, version: str) -> None:
    """Remove a version whose stage failed after registering it (best effort: if the store is
    down, it stays "pending", which the champion rule ignores)."""
    with contextlib.suppress(MlflowException, OSError):
        MlflowClient().delete_model_version(name, version)


def discard_incomplete_versions(name: str, run_id: str) -> list[str]:
    """Versions of `run_id` still "pending": an earlier attempt of this training was killed
    between registering its model and publishing its outputs."""
    client = MlflowClient()
    try:
        versions = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    except MlflowException:
        return []
    discarded = []
    for version in versions:
        if version.tags.get(OUTPUTS_TAG) != COMPLETE:
            delete_version(name, str(version.version))
            discarded.append(str(version.version))
    return discarded


def verified_copy(name: str, reference: str, into: Path) -> tuple[ModelVersion, Path]:
    """Download version `reference` of `name` (a number, or `@alias`) into `into` after
    checking its signature, and its files against the digest signed; return the version and the
    local copy to load. An unsigned version, a signature that does not hold, or files that are
    not the ones signed are refused in one line naming the version."""
    client = MlflowClient()
    version = _find_version(client, name, reference)
    label = f"{name} version {version.version}"
    digest = version.tags.get(signing.DIGEST_TAG)
    signature = version.tags.get(signing.SIGNATURE_TAG)
    if not digest or not signature:
        raise ModelFilesError(
            f"{label}: not signed by the store's registrar (registered by hand, or before "
            "versions were signed); refused: retrain it (dvc repro --force train)"
        )
    key = signing.trusted_key(mlflow.get_tracking_uri())
    created = version.creation_timestamp
    if not signing.signature_holds(key, signature, name, str(version.version), created, digest):
        raise ModelFilesError(
            f"{label}: its signature does not hold for its number, creation time and files' "
            "digest (its tags were changed, or another key signed it); refused"
        )
    local, actual = download_with_digest(f"models:/{name}/{version.version}", into)
    if actual != digest:
        raise ModelFilesError(
            f"{label}: its model files have SHA-256 {actual[:16]}..., not the {digest[:16]}... "
            "that was signed when it was registered: changed after registration; refused"
        )
    return version, local


def load_verified(name: str, reference: str, into: Path) -> tuple[ModelVersion, Any]:
    """Version `reference` of `name` as a pyfunc model, loaded from the copy in `into` only
    after its signature and files check out (verified_copy)."""
    version, local = verified_copy(name, reference, into)
    return version, load_copy(local)


def load_copy(local: str | Path) -> Any:
    """The pyfunc model of a copy verified_copy checked (serve checks it, then its app loads it)."""
    return mlflow.pyfunc.load_model(str(local))


def _find_version(client: MlflowClient, name: str, reference: str) -> ModelVersion:
    """Version `reference` of `name`; a model, alias or version that does not exist yet is a
    TrackingError that says what to run."""
    try:
        if reference.startswith("@"):
            return client.get_model_version_by_alias(name, reference[1:])
        return client.get_model_version(name, reference)
    except MlflowException as error:
        if error.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise
    store = mlflow.get_tracking_uri()
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        versions = []
    if not versions:
        raise TrackingError(
            f"no model {name} is registered in the MLflow store {store}: train one first "
            "(python3 dev.py repro), or point MLFLOW_TRACKING_URI at the team's server"
        ) from None
    if reference.startswith("@"):
        raise TrackingError(
            f"model {name} has no {reference} in {store}: no version has passed the champion "
            "rule yet (it must beat PCA at its code size); run python3 dev.py repro, whose "
            "promote stage sets it"
        ) from None
    numbers = ", ".join(str(n) for n in sorted(int(v.version) for v in versions))
    raise TrackingError(f"model {name} has no version {reference} (it has {numbers})") from None


def verify(name: str, version: str) -> str | None:
    """Why version `version` of `name` must not be loaded, or None when its files check out."""
    with tempfile.TemporaryDirectory(prefix="verify-model-") as copy:
        try:
            verified_copy(name, version, Path(copy))
        except ModelFilesError as refused:
            return str(refused)
    return None
