"""What per-epoch checkpointing costs the default training, measured in one process.

    PYTHONPATH=src python benchmarks/checkpoint_cost.py                # default: 54,000 images
    PYTHONPATH=src python benchmarks/checkpoint_cost.py --images 6400  # a quicker estimate

Trains the default network (conv, 32-number code, psnr loss, one-cycle, batch 128, fresh noise)
for a few epochs on synthetic MNIST-shaped images, saving the train stage's checkpoint after
every epoch exactly as it does (weights, Adam state, schedule, generator, best weights; SHA-256,
fsync, atomic rename). Reports the median time of an epoch and of a checkpoint save, and their
ratio. Needs only torch.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from machine import machine

from mnist_ae.model.checkpoints import TrainingCheckpoint
from mnist_ae.model.devices import (
    device_description,
    resolve_precision,
    select_device,
    uses_channels_last,
)
from mnist_ae.model.loop import Pairs, TrainSettings, fit
from mnist_ae.model.networks import ModelConfig, build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=54_000, help="training images per epoch")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--out", type=Path, help="a JSON file for the figures and the machine")
    args = parser.parse_args()

    device = select_device(args.device)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.images, 28, 28), dtype=torch.uint8, generator=generator)
    val = images[:1000].to(device)
    settings = TrainSettings(
        "psnr",
        0.04,
        args.epochs,
        128,
        seed=0,
        precision=resolve_precision(device, args.precision),
        channels_last=uses_channels_last(device),
        schedule="onecycle",
        fresh_noise_std=0.4,
    )
    model = build_model(ModelConfig("conv", 32)).to(device)
    saves: list[float] = []
    folder = tempfile.TemporaryDirectory()
    with folder, TrainingCheckpoint(Path(folder.name), "benchmark").locked() as checkpoints:

        def on_epoch(epoch, progress) -> None:
            began = time.perf_counter()
            checkpoints.save(progress, run_id="benchmark")
            saves.append(time.perf_counter() - began)

        on_device = images.to(device)
        result = fit(model, Pairs(on_device, on_device), Pairs(val, val), settings, on_epoch)
        size = checkpoints.path.stat().st_size
    epoch = statistics.median(e.seconds for e in result.history)
    save = statistics.median(saves)
    print(f"device: {device_description(device)}, {settings.precision}")
    print(f"epoch of {args.images:,} images: {epoch:.2f} s (median of {args.epochs})")
    print(f"checkpoint save: {save * 1000:.1f} ms (median), {size / 2**20:.1f} MiB")
    print(f"ratio: {save / epoch:.4%} of an epoch")
    if args.out is not None:
        summary = {
            "machine": machine(), "device": device_description(device), "torch": torch.__version__,
            "precision": settings.precision, "images_per_epoch": args.images,
            "epoch_s": round(epoch, 2), "save_ms": round(save * 1000, 1),
            "checkpoint_mib": round(size / 2**20, 1), "save_share_of_epoch": round(save / epoch, 5),
        }  # fmt: skip
        args.out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
