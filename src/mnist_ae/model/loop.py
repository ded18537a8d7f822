"""The training loop, built for speed: the data stays on the device as uint8, batches are cut by an
on-device permutation, and the fast path (bf16 autocast, channels_last, torch.compile) is chosen
per device. The weights with the best validation loss are kept, and after every epoch a
`Progress` holds all it takes to continue bit for bit. Imports only torch (and our own modules),
so the GPU benchmark runs with a plain torch install."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from mnist_ae.data.pixels import to_model_input, to_uint8, to_unit
from mnist_ae.model.losses import TrainingDiverged, reconstruction_loss
from mnist_ae.model.networks import Autoencoder
from mnist_ae.model.progress import EpochResult, Progress, TrainResult

if TYPE_CHECKING:  # numpy is needed only by callers that hand in arrays
    import numpy as np


@dataclass(frozen=True)
class TrainSettings:
    loss: str
    lr: float
    epochs: int
    batch_size: int
    seed: int
    precision: str = "fp32"  # "bf16": autocast convolutions to bfloat16; weights stay fp32
    channels_last: bool = False
    compile: bool = False
    schedule: str = "constant"  # "onecycle": warm up to `lr`, then anneal, over all the steps
    fresh_noise_std: float | None = None  # draw new noise on the targets every batch


@dataclass(frozen=True)
class Pairs:
    """Inputs and targets as uint8 tensors (N x 28 x 28) on the training device."""

    inputs: torch.Tensor
    targets: torch.Tensor

    def __post_init__(self) -> None:
        if self.inputs.shape != self.targets.shape:
            shapes = f"{tuple(self.inputs.shape)} != {tuple(self.targets.shape)}"
            raise ValueError(f"inputs and targets differ in shape: {shapes}")

    def __len__(self) -> int:
        return len(self.inputs)

    @classmethod
    def to_device(cls, inputs: np.ndarray, targets: np.ndarray, device: torch.device) -> Pairs:
        """Move uint8 arrays to the device once; clean -> clean pairs share one copy."""
        target = torch.from_numpy(targets).to(device)
        return cls(target if inputs is targets else torch.from_numpy(inputs).to(device), target)


class Trainer:
    """A model with its Adam optimizer and fast-path choices: one epoch or one validation pass
    at a time. Every training batch is full (the remainder of the permutation is left for the
    next epoch), so shapes stay static for torch.compile and CUDA graphs."""

    def __init__(
        self,
        model: Autoencoder,
        settings: TrainSettings,
        device: torch.device,
        steps_per_epoch: int | None = None,
    ) -> None:
        self.model, self.settings, self.device = model, settings, device
        if settings.channels_last:
            model.to(memory_format=torch.channels_last)
        self.cuda_graphs = settings.compile and device.type == "cuda"
        # On CUDA "reduce-overhead" replays CUDA graphs: batch 128 of a tiny net is launch-bound.
        mode = "reduce-overhead" if self.cuda_graphs else None
        self.logits = torch.compile(model.logits, mode=mode) if settings.compile else model.logits
        # One fused kernel per step instead of a dozen small ops per parameter tensor.
        self.optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, fused=True)
        self.scheduler = None
        if settings.schedule == "onecycle":
            if steps_per_epoch is None:
                raise ValueError("the onecycle schedule needs steps_per_epoch")
            self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
                self.optimizer, max_lr=settings.lr, total_steps=settings.epochs * steps_per_epoch
            )
        elif settings.schedule != "constant":
            raise ValueError(f"unknown schedule {settings.schedule!r} (constant or onecycle)")

    def _autocast(self) -> AbstractContextManager:
        if self.settings.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def _noisy(self, targets: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Fresh noise on the device, quantised to 8 bits like the add-noise stage's images."""
        clean = to_unit(targets)
        noise = torch.randn(clean.shape, generator=generator, device=clean.device)
        return to_uint8(clean + self.settings.fresh_noise_std * noise)

    def _loss(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x = to_model_input(inputs)
        if self.settings.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            logits = self.logits(x)
        return reconstruction_loss(logits.float(), to_model_input(targets), self.settings.loss)

    def train_epoch(
        self, data: Pairs, generator: torch.Generator, on_batch: Callable[[int], None] | None = None
    ) -> tuple[float, int]:
        """One pass over `data` in a random order: (mean training loss, images used)."""
        self.model.train()
        size = min(self.settings.batch_size, len(data))
        batches = batches_per_epoch(len(data), self.settings)
        order = torch.randperm(len(data), generator=generator, device=generator.device)
        total = torch.zeros((), device=self.device)  # summed on the device: no sync per batch
        for index in range(batches):
            batch = order[index * size : (index + 1) * size]
            if self.cuda_graphs:
                torch.compiler.cudagraph_mark_step_begin()
            targets = data.targets[batch]
            if self.settings.fresh_noise_std is None:
                inputs = data.inputs[batch]
            else:
                inputs = self._noisy(targets, generator)
            loss = self._loss(inputs, targets)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            if self.scheduler is not None:
                self.scheduler.step()
            total += loss.detach()
            if on_batch is not None:
                on_batch(size)
        return total.item() / batches, batches * size

    @torch.no_grad()
    def validation_loss(self, data: Pairs) -> float:
        """Mean loss over a whole split, weighting each batch by its size."""
        self.model.eval()
        total = torch.zeros((), device=self.device)
        for start in range(0, len(data), self.settings.batch_size):
            chunk = slice(start, start + self.settings.batch_size)
            if self.cuda_graphs:
                torch.compiler.cudagraph_mark_step_begin()
            loss = self._loss(data.inputs[chunk], data.targets[chunk])
            total += loss * len(data.inputs[chunk])
        return total.item() / len(data)


def batches_per_epoch(images: int, settings: TrainSettings) -> int:
    """Full batches only: the images left over wait for the next epoch's order."""
    return images // min(settings.batch_size, images)


def fit(
    model: Autoencoder,
    train: Pairs,
    val: Pairs,
    settings: TrainSettings,
    on_epoch: Callable[[EpochResult, Progress], None] | None = None,
    show_progress: bool | None = None,
    resume: Progress | None = None,
) -> TrainResult:
    """Train (from `resume` when given); afterwards `model` holds the weights of the epoch with
    the best validation loss. `on_epoch` gets each epoch's result and the progress after it.

    A tqdm bar when stderr is a terminal; one line per epoch on stdout in any case.
    """
    device = train.inputs.device
    trainer = Trainer(
        model, settings, device, steps_per_epoch=batches_per_epoch(len(train), settings)
    )
    generator = torch.Generator(device=device).manual_seed(settings.seed)
    interactive = sys.stderr.isatty() if show_progress is None else show_progress
    result = TrainResult()
    if resume is not None:
        model.load_state_dict(resume.model)
        trainer.optimizer.load_state_dict(resume.optimizer)
        if trainer.scheduler is not None:
            trainer.scheduler.load_state_dict(resume.scheduler)
        generator.set_state(resume.generator)
        result = resume.result
    for epoch in range(len(result.history) + 1, settings.epochs + 1):
        started = time.perf_counter()
        bar = _progress_bar(len(train), f"epoch {epoch}/{settings.epochs}") if interactive else None
        train_loss, seen = trainer.train_epoch(train, generator, bar.update if bar else None)
        if bar is not None:
            bar.close()
        val_loss = trainer.validation_loss(val)
        for which, value in (("training", train_loss), ("validation", val_loss)):
            if not math.isfinite(value):
                raise TrainingDiverged(epoch, settings.epochs, which, value, settings.lr)
        seconds = time.perf_counter() - started
        epoch_result = EpochResult(epoch, train_loss, val_loss, seconds)
        result.history.append(epoch_result)
        result.train_seconds += seconds
        result.images_seen += seen
        if val_loss < result.best_val_loss:
            result.best_epoch, result.best_val_loss = epoch, val_loss
            result.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if on_epoch is not None:
            scheduler = trainer.scheduler.state_dict() if trainer.scheduler else None
            progress = Progress(
                epoch,
                model.state_dict(),
                trainer.optimizer.state_dict(),
                scheduler,
                generator.get_state(),
                result,
            )
            on_epoch(epoch_result, progress)
        # printed once the epoch is saved: whatever stops the process after this line, it is kept
        print(
            f"epoch {epoch}/{settings.epochs}  train_loss {train_loss:.5f}  val_loss {val_loss:.5f}"
            f"  {seconds:.1f} s  {seen / seconds:,.0f} img/s",
            flush=True,
        )
    model.load_state_dict(result.best_state)
    model.eval()
    return result


def _progress_bar(total: int, description: str):
    from tqdm import tqdm  # imported only for terminals: the benchmark needs only torch

    return tqdm(total=total, unit="img", desc=description, leave=False)
