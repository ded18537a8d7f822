"""Choosing the compute device once, and the fast path that pays on it."""

from __future__ import annotations

import sys

import torch

from mnist_ae.plumbing.errors import PipelineError


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


def cpu_supports_bf16() -> bool:
    """AVX-512 BF16 (or AMX): bf16 convolutions run natively and faster than fp32 here."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def resolve_precision(device: torch.device, precision: str) -> str:
    """'auto' means bf16 autocast on CUDA and fp32 elsewhere: on the CPU the same params give
    the same model whatever the CPU has; bf16 there is an explicit choice (see the README)."""
    if precision != "auto":
        return precision
    return "bf16" if device.type == "cuda" else "fp32"


def uses_channels_last(device: torch.device) -> bool:
    """NHWC convolutions: faster with cuDNN and with oneDNN on CPU (measured: benchmarks/)."""
    return device.type in ("cuda", "cpu")


def configure_backends(device: torch.device) -> None:
    """cuDNN autotuning picks the fastest kernels for our fixed shapes on CUDA."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def peak_host_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB (0 where the OS does not say)."""
    try:
        import resource
    except ImportError:  # Windows
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, else KiB
