"""What a training has achieved so far: each epoch's losses, the best weights, and the whole state
it takes to continue bit for bit after a stop. Imports only torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class EpochResult:
    epoch: int  # 1-based
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
    best_state: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def images_per_second(self) -> float:
        return self.images_seen / self.train_seconds if self.train_seconds else 0.0

    def summary(self) -> dict[str, float]:
        """What the run achieved: the same on every rerun (a DVC metric)."""
        return {"best_epoch": self.best_epoch, "best_val_loss": self.best_val_loss}

    def speed(self) -> dict[str, float]:
        """How fast it went: differs between reruns (an MLflow metric only)."""
        return {"train_seconds": self.train_seconds, "images_per_second": self.images_per_second}

    def rows(self) -> list[dict[str, float]]:
        return [
            {"epoch": e.epoch, "train_loss": e.train_loss, "val_loss": e.val_loss}
            for e in self.history
        ]


@dataclass
class Progress:
    """Everything that continues a training after `epoch` exactly as if it had never stopped:
    weights, optimizer and schedule state, the generator behind batch order and fresh noise,
    and the result so far (history, best weights). Its tensors are the live ones: save it at
    once (torch.save of `as_dict()`), before training goes on."""

    epoch: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any] | None
    generator: torch.Tensor
    result: TrainResult

    def as_dict(self) -> dict[str, Any]:
        result = {name: getattr(self.result, name) for name in TrainResult.__dataclass_fields__}
        result["history"] = [asdict(epoch) for epoch in self.result.history]
        return {
            "epoch": self.epoch,
            "model": self.model,
            "optimizer": self.optimizer,
            "scheduler": self.scheduler,
            "generator": self.generator,
            "result": result,
        }

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> Progress:
        result = dict(saved["result"])
        result["history"] = [EpochResult(**epoch) for epoch in result["history"]]
        return cls(
            epoch=saved["epoch"],
            model=saved["model"],
            optimizer=saved["optimizer"],
            scheduler=saved["scheduler"],
            generator=saved["generator"],
            result=TrainResult(**result),
        )
