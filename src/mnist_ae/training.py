"""The training loop: data resident on the device, seeded batches, best weights kept by val loss."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from mnist_ae import figures
from mnist_ae.datasets import load_split, split_path
from mnist_ae.models import Autoencoder, to_model_input
from mnist_ae.storage import write_csv, write_json


def reconstruction_loss(logits: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Mean per-pixel loss; BCE works on logits, which is stable (and safe under autocast)."""
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits, target)
    if kind == "mse":
        return F.mse_loss(torch.sigmoid(logits), target)
    if kind == "l1":
        return F.l1_loss(torch.sigmoid(logits), target)
    raise ValueError(f"unknown loss {kind!r} (expected bce, mse or l1)")


@dataclass(frozen=True)
class TrainSettings:
    loss: str
    lr: float
    epochs: int
    batch_size: int
    seed: int


@dataclass(frozen=True)
class Pairs:
    """Inputs and targets as uint8 tensors (N x 28 x 28) on the training device."""

    inputs: torch.Tensor
    targets: torch.Tensor

    def __post_init__(self) -> None:
        if self.inputs.shape != self.targets.shape:
            raise ValueError(
                f"inputs {tuple(self.inputs.shape)} != targets {tuple(self.targets.shape)}"
            )

    def __len__(self) -> int:
        return len(self.inputs)


def load_pairs(
    processed: Path, noisy: Path, denoise: bool, device: torch.device
) -> tuple[dict[str, Pairs], list[Path]]:
    """Train and val pairs moved to the device once (noisy -> clean when denoising, else
    clean -> clean), and the files they came from."""
    pairs, files = {}, []
    for name in ("train", "val"):
        target_file = split_path(processed, name)
        input_file = split_path(noisy, name) if denoise else target_file
        targets = torch.from_numpy(load_split(target_file).images).to(device)
        inputs = torch.from_numpy(load_split(input_file).images).to(device) if denoise else targets
        pairs[name] = Pairs(inputs, targets)
        files += sorted({target_file, input_file})
    return pairs, files


@dataclass(frozen=True)
class EpochResult:
    epoch: int
    train_loss: float
    val_loss: float
    seconds: float


@dataclass
class TrainResult:
    history: list[EpochResult] = field(default_factory=list)
    best_epoch: int = -1
    best_val_loss: float = float("inf")
    train_seconds: float = 0.0
    images_seen: int = 0

    @property
    def images_per_second(self) -> float:
        return self.images_seen / self.train_seconds if self.train_seconds else 0.0

    def summary(self) -> dict[str, float]:
        return {"best_epoch": self.best_epoch, "best_val_loss": self.best_val_loss}


def save_history(result: TrainResult, directory: Path, loss: str, code_size: int) -> None:
    """losses.csv (DVC plot), metrics.json (DVC metrics) and losses.png."""
    rows = [
        {"epoch": e.epoch, "train_loss": e.train_loss, "val_loss": e.val_loss}
        for e in result.history
    ]
    write_csv(directory / "losses.csv", rows)
    write_json(directory / "metrics.json", {**result.summary(), "code_size": code_size})
    figures.loss_curves(
        [r["epoch"] for r in rows], [r["train_loss"] for r in rows], [r["val_loss"] for r in rows],
        directory / "losses.png", loss,
    )  # fmt: skip


@torch.no_grad()
def evaluate_loss(model: Autoencoder, data: Pairs, loss: str, batch_size: int) -> float:
    """Mean loss over a whole split, weighting each batch by its size."""
    model.eval()
    total = torch.zeros((), device=data.inputs.device)
    for start in range(0, len(data), batch_size):
        inputs = to_model_input(data.inputs[start : start + batch_size])
        targets = to_model_input(data.targets[start : start + batch_size])
        total += reconstruction_loss(model.logits(inputs), targets, loss) * len(inputs)
    return total.item() / len(data)


def _train_epoch(
    model: Autoencoder,
    optimizer: torch.optim.Optimizer,
    data: Pairs,
    settings: TrainSettings,
    generator: torch.Generator,
    progress: tqdm | None,
) -> float:
    model.train()
    order = torch.randperm(len(data), generator=generator, device=generator.device)
    total = torch.zeros((), device=data.inputs.device)  # summed on the device: no sync per batch
    for start in range(0, len(data), settings.batch_size):
        batch = order[start : start + settings.batch_size]
        inputs = to_model_input(data.inputs[batch])
        targets = to_model_input(data.targets[batch])
        loss = reconstruction_loss(model.logits(inputs), targets, settings.loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach() * len(batch)
        if progress is not None:
            progress.update(len(batch))
    return total.item() / len(data)


def fit(
    model: Autoencoder,
    train: Pairs,
    val: Pairs,
    settings: TrainSettings,
    on_epoch: Callable[[EpochResult], None] | None = None,
    show_progress: bool | None = None,
) -> TrainResult:
    """Train with Adam; after the last epoch the model holds the weights with the best val loss.

    A tqdm bar when stderr is a terminal, else one line per epoch on stdout.
    """
    device = train.inputs.device
    generator = torch.Generator(device=device).manual_seed(settings.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    interactive = sys.stderr.isatty() if show_progress is None else show_progress
    result = TrainResult()
    best_state: dict[str, torch.Tensor] = {}
    for epoch in range(settings.epochs):
        started = time.perf_counter()
        with tqdm(
            total=len(train), unit="img", desc=f"epoch {epoch + 1}/{settings.epochs}",
            disable=not interactive, leave=False,
        ) as bar:  # fmt: skip
            train_loss = _train_epoch(
                model, optimizer, train, settings, generator, bar if interactive else None
            )
        val_loss = evaluate_loss(model, val, settings.loss, settings.batch_size)
        seconds = time.perf_counter() - started
        epoch_result = EpochResult(epoch + 1, train_loss, val_loss, seconds)
        result.history.append(epoch_result)
        result.train_seconds += seconds
        result.images_seen += len(train)
        if val_loss < result.best_val_loss:
            result.best_epoch, result.best_val_loss = epoch + 1, val_loss
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        line = (
            f"epoch {epoch + 1}/{settings.epochs}  train_loss {train_loss:.5f}  "
            f"val_loss {val_loss:.5f}  {seconds:.1f} s  {len(train) / seconds:,.0f} img/s"
        )
        tqdm.write(line, file=sys.stdout)
        if on_epoch is not None:
            on_epoch(epoch_result)
    model.load_state_dict(best_state)
    model.eval()
    return result
