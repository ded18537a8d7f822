"""The machine a benchmark ran on, as its JSON records it: the CPU's model and vector kind (AVX2
or AVX-512 decides the fp32 kernels, and so the speed and the last bits), and the cores."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu() -> str:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                  if line.startswith("model name")), platform.processor())  # fmt: skip
    flags = set(next((line for line in info.splitlines() if line.startswith("flags")), "").split())
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    vector += " BF16" if "avx512_bf16" in flags else ""
    return f"{model}, {vector}"


def machine() -> dict:
    return {"cpu": cpu(), "cores": len(os.sched_getaffinity(0))}
