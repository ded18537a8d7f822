"""How much disk a checkout that ran the pipeline takes: its environment, its data and models,
DVC's cache, and uv's cache (hard-linked into the environment on one file system).

    python benchmarks/disk_use.py /path/to/a/checkout --out docs/results/disk-use.json

Counts each file once (`du`'s way: hard links once), in MB of 10^6 bytes.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from machine import machine


def size_mb(folder: Path, seen: set[tuple[int, int]]) -> float:
    total = 0
    for parent, _, files in os.walk(folder):
        for name in files:
            info = os.lstat(os.path.join(parent, name))
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_blocks * 512
    return round(total / 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path)
    parser.add_argument("--uv-cache", type=Path, default=Path.home() / ".cache" / "uv")
    parser.add_argument("--out", type=Path, default=Path("disk-use.json"))
    args = parser.parse_args()
    seen: set[tuple[int, int]] = set()
    venv = size_mb(args.checkout / ".venv", seen)
    outputs = sum(size_mb(args.checkout / name, seen) for name in ("data", "models", ".dvc/cache"))
    uv_cache_beyond = size_mb(args.uv_cache, seen)  # what the environment did not already count
    summary = {
        "machine": machine(),
        "venv_mb": venv,
        "data_models_and_dvc_cache_mb": outputs,
        "uv_cache_beyond_venv_mb": uv_cache_beyond,
    }
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(summary)


if __name__ == "__main__":
    main()
