"""Per-epoch losses of a training, logged with step = epoch, each epoch exactly once even across a
resume. While the tracking server does not answer they are kept and sent later, so a short
outage costs no training time."""

from __future__ import annotations

import time
from typing import Any

import mlflow
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from mnist_ae.tracking.store import is_server, problem_reaching

_PROBE_SECONDS = 2.0  # a server that does not answer its /health this fast is treated as down


class EpochLog:
    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.pending: dict[int, dict[str, float]] = {}
        self.warned = False

    def reconcile(self, history: list[Any]) -> None:
        """After a resume: queue the epochs of `history` the run does not have yet."""
        logged = {m.step for m in MlflowClient().get_metric_history(self.run_id, "val_loss")}
        for epoch in history:
            if epoch.epoch not in logged:
                self.add(epoch)
        self.flush()

    def add(self, epoch: Any) -> None:
        self.pending[epoch.epoch] = {"train_loss": epoch.train_loss, "val_loss": epoch.val_loss}

    def _send(self) -> None:
        """Send what is pending. A server is asked /health first, quickly: MLflow's client would
        retry a refused request for minutes while the training waits."""
        uri = mlflow.get_tracking_uri()
        if is_server(uri) and (problem := problem_reaching(uri, _PROBE_SECONDS)) is not None:
            raise ConnectionError(f"{uri}: {problem}")
        now = int(time.time() * 1000)
        metrics = [
            Metric(key, value, now, step)
            for step, values in sorted(self.pending.items())
            for key, value in values.items()
        ]
        MlflowClient().log_batch(self.run_id, metrics=metrics)
        self.pending.clear()

    def flush(self, patience: float = 0.0) -> bool:
        """Send what is pending; True when nothing is left. Retries for `patience` seconds."""
        deadline = time.monotonic() + patience
        while self.pending:
            try:
                self._send()
            except Exception as error:
                if time.monotonic() >= deadline:
                    if not self.warned:
                        print(
                            f"warning: MLflow unreachable, epoch metrics kept for later ({error})"
                        )
                        self.warned = True
                    return False
                time.sleep(2.0)
        return True
