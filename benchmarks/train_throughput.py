"""Training throughput: our loop against the usual Dataset + DataLoader loop, in one process.

    PYTHONPATH=src python benchmarks/train_throughput.py --arch seed --batch-size 128
    PYTHONPATH=src python benchmarks/train_throughput.py --arch conv
    PYTHONPATH=src python benchmarks/train_throughput.py --full --compile   # the article's run

Needs only torch (the GPU machines have none of our other packages). Both loops train the same
network with the same loss and Adam settings on the same synthetic MNIST-shaped uint8 images
(speed does not depend on the pixels); each is warmed up, then timed over alternating rounds,
and the median of each is reported with their ratio.

- naive: a torch Dataset returns one image at a time as a float tensor, a DataLoader collates
  batches (pytorch/examples' MNIST recipe: 1 worker and pinned memory on CUDA), each batch is
  copied to the device, fp32, plain Adam.
- ours: mnist_ae.model.loop.Trainer: images resident on the device as uint8, batches cut by an
  on-device permutation, scaled there; bf16 autocast and channels_last where they pay
  (model/devices.py), fused Adam on every device, torch.compile with --compile.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from machine import machine
from torch.utils.data import DataLoader, Dataset

from mnist_ae.model.devices import (
    configure_backends,
    device_description,
    peak_host_rss_mib,
    resolve_precision,
    select_device,
    uses_channels_last,
)
from mnist_ae.model.loop import Pairs, Trainer, TrainSettings, fit
from mnist_ae.model.losses import reconstruction_loss
from mnist_ae.model.networks import Autoencoder, ModelConfig, build_model


class OneImageAtATime(Dataset):
    """The usual recipe: index -> one float image in [0, 1] (input and target alike)."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[index].float().div(255).unsqueeze(0)
        return image, image


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def naive_epoch(model: Autoencoder, optimizer, loader: DataLoader, device, loss: str) -> int:
    model.train()
    seen = 0
    for inputs, targets in loader:
        inputs = inputs.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        batch_loss = reconstruction_loss(model.logits(inputs), targets, loss)
        optimizer.zero_grad(set_to_none=True)
        batch_loss.backward()
        optimizer.step()
        seen += len(inputs)
    synchronize(device)
    return seen


def timed(run) -> float:
    """Images per second of one call of `run`, which returns the number of images it used."""
    started = time.perf_counter()
    images = run()
    return images / (time.perf_counter() - started)


def make_images(count: int, seed: int, source: str | None = None) -> torch.Tensor:
    """`count` images: from a split file of the preprocess stage (real digits; numpy needed),
    repeated as needed, or random pixels."""
    if source is None:
        generator = torch.Generator().manual_seed(seed)
        return torch.randint(0, 256, (count, 28, 28), dtype=torch.uint8, generator=generator)
    import numpy as np  # only this option needs numpy

    with np.load(source) as split:
        images = torch.from_numpy(split["images"])
    return images.repeat((count + len(images) - 1) // len(images), 1, 1)[:count]


def compare_loops(args: argparse.Namespace, device: torch.device) -> dict[str, object]:
    """Both loops timed in alternating rounds; prints them and returns the medians."""
    config = ModelConfig(args.arch, args.latent_dim)
    images = make_images(args.images, seed=0, source=args.data)
    warmup = images[: args.warmup_images]

    torch.manual_seed(0)
    naive_model = build_model(config).to(device)
    naive_optimizer = torch.optim.Adam(naive_model.parameters(), lr=1e-3)
    cuda = device.type == "cuda"
    loader_options = {
        "batch_size": args.batch_size,
        "shuffle": True,
        "drop_last": True,
        "num_workers": 1 if cuda else 0,
        "pin_memory": cuda,
    }

    def naive(data: torch.Tensor) -> int:
        loader = DataLoader(OneImageAtATime(data), **loader_options)
        return naive_epoch(naive_model, naive_optimizer, loader, device, "bce")

    torch.manual_seed(0)
    settings = TrainSettings(
        "bce",
        1e-3,
        1,
        args.batch_size,
        seed=0,
        precision=resolve_precision(device, args.precision),
        channels_last=uses_channels_last(device),
        compile=args.compile,
    )
    trainer = Trainer(build_model(config).to(device), settings, device)
    generator = torch.Generator(device=device).manual_seed(0)
    resident, resident_warmup = Pairs(*[images.to(device)] * 2), Pairs(*[warmup.to(device)] * 2)

    def ours(data: Pairs) -> int:
        _, seen = trainer.train_epoch(data, generator)
        return seen

    naive(warmup)
    ours(resident_warmup)
    naive_rates, our_rates = [], []
    for _ in range(args.rounds):
        naive_rates.append(timed(lambda: naive(images)))
        our_rates.append(timed(lambda: ours(resident)))
    naive_rate, our_rate = statistics.median(naive_rates), statistics.median(our_rates)
    print(
        f"arch {args.arch}, batch {args.batch_size}, {args.images:,} images per timed epoch, "
        f"median of {args.rounds} rounds after warm-up"
    )
    print(f"  naive DataLoader loop (fp32): {naive_rate:12,.0f} images/s")
    print(
        f"  our loop ({settings.precision}{', channels_last' if settings.channels_last else ''}"
        f"{', compiled' if settings.compile else ''}): {our_rate:12,.0f} images/s"
    )
    print(f"  ratio: {our_rate / naive_rate:.2f}x")
    return {
        "naive_images_per_second": round(naive_rate),
        "our_images_per_second": round(our_rate),
        "ratio": round(our_rate / naive_rate, 3),
        "our_precision": settings.precision,
        "channels_last": settings.channels_last,
        "compiled": settings.compile,
    }


def full_run(args: argparse.Namespace, device: torch.device) -> dict[str, object]:
    """The origin article's configuration: arch seed, 50 epochs of 60,000 images, batch 128,
    validated on 10,000 images every epoch; prints and returns its times."""
    count = getattr(args, "full_images", 60_000)  # smaller only in gpu_check.py --cpu-smoke
    train = make_images(count, seed=0, source=args.data).to(device)
    val = make_images(count // 6, seed=1, source=args.data).to(device)
    torch.manual_seed(0)
    settings = TrainSettings(
        "bce",
        1e-3,
        args.epochs,
        args.batch_size,
        seed=0,
        precision=resolve_precision(device, args.precision),
        channels_last=uses_channels_last(device),
        compile=args.compile,
    )
    model = build_model(ModelConfig("seed", 32)).to(device)
    started = time.perf_counter()
    result = fit(model, Pairs(train, train), Pairs(val, val), settings, show_progress=False)
    synchronize(device)
    wall = time.perf_counter() - started
    first, rest = result.history[0].seconds, sum(e.seconds for e in result.history[1:])
    print(
        f"full run: arch seed, {args.epochs} epochs x {count:,} images, batch {args.batch_size}, "
        f"{settings.precision}{', compiled' if settings.compile else ''}"
    )
    print(
        f"  training incl. validation: {wall:.1f} s wall; first epoch {first:.1f} s "
        f"(includes any compilation), the other {args.epochs - 1}: {rest:.1f} s"
    )
    print(f"  {result.images_per_second:,.0f} training images/s overall")
    return {
        "epochs": args.epochs,
        "precision": settings.precision,
        "compiled": settings.compile,
        "wall_seconds": round(wall, 2),
        "first_epoch_seconds": round(first, 2),
        "other_epochs_seconds": round(rest, 2),
        "images_per_second": round(result.images_per_second),
    }


def record_run(args: argparse.Namespace, device: torch.device, result: dict) -> None:
    """Add this run, its command line and the machine to the JSON file `args.out`."""
    kept = json.loads(args.out.read_text()) if args.out.exists() else {"runs": []}
    options = {k: v for k, v in vars(args).items() if k != "out"}
    kept["runs"].append({
        "machine": machine(), "device": device_description(device), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "options": options, "result": result,
    })  # fmt: skip
    args.out.write_text(json.dumps(kept, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arch", choices=("seed", "conv"), default="conv")
    parser.add_argument("--latent-dim", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--compile", action="store_true", help="torch.compile our loop")
    parser.add_argument(
        "--images", type=int, help="images per timed epoch (default: 60,000 on CUDA, else 12,800)"
    )
    parser.add_argument("--data", help="a split .npz of real digits (data/processed/train.npz)")
    parser.add_argument("--warmup-images", type=int, default=2560)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--full", action="store_true", help="time the article's 50-epoch run")
    parser.add_argument("--epochs", type=int, default=50, help="epochs of --full")
    parser.add_argument(
        "--out", type=Path, help="a JSON file to add this run to (with the machine)"
    )
    args = parser.parse_args()
    device = select_device(args.device)
    configure_backends(device)
    if args.images is None:
        args.images = 60_000 if device.type == "cuda" else 12_800

    print(
        f"device: {device_description(device)}; torch {torch.__version__}; "
        f"{torch.get_num_threads()} CPU threads"
    )
    result = full_run(args, device) if args.full else compare_loops(args, device)
    if args.out is not None:
        record_run(args, device, result)
    memory = f"peak host RSS {peak_host_rss_mib():,.0f} MiB"
    if device.type == "cuda":
        memory += f"; peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**20:,.0f} MiB"
    print(memory)


if __name__ == "__main__":
    main()
