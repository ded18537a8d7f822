"""The model file, model.pt: the config that rebuilds the network, its weights and their SHA-256;
saved atomically, loaded with the digest checked."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from mnist_ae.model.devices import uses_channels_last
from mnist_ae.model.networks import Autoencoder, ModelConfig, build_model
from mnist_ae.plumbing.digests import sha256_weights
from mnist_ae.plumbing.errors import PipelineError
from mnist_ae.plumbing.outputs import atomic_path

MODEL_FILE = "model.pt"  # in the train stage's output folder, beside the run record


class ModelFileError(PipelineError, ValueError):
    """model.pt is missing, truncated, corrupt or not one of ours."""


def save_model(path: str | Path, model: Autoencoder, config: ModelConfig) -> str:
    """A plain torch file (no pickled code); returns the weights' SHA-256 it records."""
    state = model.state_dict()
    digest = sha256_weights(state)
    with atomic_path(path) as tmp:
        torch.save({"config": asdict(config), "state_dict": state, "sha256": digest}, tmp)
    return digest


def load_model(path: str | Path, device: torch.device | str = "cpu") -> Autoencoder:
    """Rebuild the network from its saved config and load its weights, ready for inference, in
    the layout training uses on `device`: channels_last on the CPU is 1.5x faster than the
    default layout, and outputs agree to about 1e-6."""
    device = torch.device(device)
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
        if sha256_weights(saved["state_dict"]) != saved["sha256"]:
            raise ValueError("the weights do not match their SHA-256: altered on disk")
        model = build_model(ModelConfig(**saved["config"])).to(device)
        model.load_state_dict(saved["state_dict"])
    except FileNotFoundError:
        raise ModelFileError(f"{path}: missing; run the train stage: dvc repro train") from None
    except Exception as error:  # truncated zip, bad pickle, other keys: unusable alike
        first = " ".join(str(error).split()).split(". ")[0]  # torch adds advice of its own
        reason = f"{type(error).__name__}: {first}"[:160]
        raise ModelFileError(
            f"{path}: not a readable model ({reason}); restore it with `dvc checkout "
            f"{Path(path).parent}` or retrain with `dvc repro --force train`"
        ) from None
    if uses_channels_last(device):
        model.to(memory_format=torch.channels_last)
    return model.eval()
