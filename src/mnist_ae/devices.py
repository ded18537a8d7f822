"""Choosing the compute device once, from the `train.device` param."""

from __future__ import annotations

import torch

from mnist_ae.errors import PipelineError


def select_device(name: str = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu; an explicit choice must be available."""
    available = {
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),
        "cpu": True,
    }
    if name == "auto":
        return torch.device(next(kind for kind, ok in available.items() if ok))
    if not available.get(name, False):
        raise PipelineError(f"train.device is {name!r} but no {name} device is available here")
    return torch.device(name)


def device_description(device: torch.device) -> str:
    """Human-readable name: the GPU model on CUDA, else the device type."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return device.type
