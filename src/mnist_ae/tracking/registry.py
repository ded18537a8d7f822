"""The model registry: each training's model as a new version, tagged with what it is and whether
the train stage's outputs exist for it ("pending" until they are published, then "complete")."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import mlflow
import numpy as np
import torch
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

OUTPUTS_TAG = "outputs"  # "pending" from registration until train's outputs are published
COMPLETE = "complete"
WEIGHTS_TAG = "weights_sha256"  # of the trained weights: on the training's run and its version


@dataclass(frozen=True)
class RegisteredModel:
    model_uri: str
    name: str
    version: str

    def as_dict(self) -> dict[str, str]:
        return {"model_uri": self.model_uri, "registered_model": self.name, "version": self.version}


def log_and_register_model(
    model: torch.nn.Module, example: np.ndarray, registered_name: str, tags: Mapping[str, Any]
) -> RegisteredModel:
    """Log the model (torch.export format, float32 N x 1 x 28 x 28 in [0, 1] in and out) and
    register it as a new version tagged with `tags` and outputs "pending". The example is a
    numpy batch of at least 2: MLflow then keeps the pyfunc flavor and a free batch size."""
    model = model.to("cpu").eval()
    with torch.no_grad():
        output = model(torch.from_numpy(example)).numpy()
    info = mlflow.pytorch.log_model(
        model,
        name="model",
        signature=infer_signature(example, output),
        input_example=example,
        # A torch.export model needs only torch to run; inferring this costs ~10 s.
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
    )
    version_tags = {key: str(value) for key, value in tags.items()} | {OUTPUTS_TAG: "pending"}
    version = mlflow.register_model(info.model_uri, registered_name, tags=version_tags)
    return RegisteredModel(info.model_uri, registered_name, str(version.version))


def tag_version(name: str, version: str, tags: Mapping[str, Any]) -> None:
    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value))


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
