"""What the stages after train share: their command line, params, the train stage's run record, the
device and the model; then a child run of the training's MLflow run for what the stage made, and
its files published only once all of it succeeded."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mnist_ae.plumbing.cli import stage_arguments
from mnist_ae.plumbing.outputs import publish_files
from mnist_ae.plumbing.params import Params, flatten, load_params
from mnist_ae.plumbing.repo import repo_root
from mnist_ae.tracking import runs, store
from mnist_ae.tracking.run_record import RUN_RECORD, RunRecord, read_run_record

if TYPE_CHECKING:
    import torch

    from mnist_ae.model.networks import Autoencoder


@dataclass
class AnalysisStage:
    name: str  # the DVC stage, and its child run's name
    args: argparse.Namespace
    params: Params
    record: RunRecord
    device: torch.device | None  # None: a stage that only reads reports (promote), without torch
    root: Path

    @classmethod
    def from_command_line(
        cls, name: str, description: str | None, inputs: dict[str, str], uses_model: bool = True
    ) -> AnalysisStage:
        """Parse `--<input> PATH` for each of `inputs` (name -> help), `--model` (the train
        stage's folder) or `--run` (its run.json), and `--out`; check the run record before
        any work."""
        trained = {"model": "the train stage's folder"} if uses_model else {}
        trained = trained or {"run": "the train stage's run.json"}
        args = stage_arguments(description, **inputs, **trained, out="folder for the reports")
        params = load_params(args.params)
        record = read_run_record(args.model / RUN_RECORD if uses_model else args.run)
        device = None
        if uses_model:
            from mnist_ae.model.devices import select_device  # torch (1.6 s), only here

            device = select_device(params.train.device)
        return cls(name, args, params, record, device, repo_root())

    def load_model(self) -> Autoencoder:
        from mnist_ae.model.model_file import MODEL_FILE, load_model

        return load_model(self.args.model / MODEL_FILE, self.device)

    @contextlib.contextmanager
    def tracked(self, keys: Iterable[str]) -> Iterator[None]:
        """This stage's child run of the training's run, with the params `keys` it used."""
        experiment_id = store.connect(self.params.mlflow.experiment, self.root)
        runs.close_abandoned_runs(experiment_id, self.root)
        with runs.open_child_run(self.root, self.record.run_id, self.name):
            runs.log_params(flatten(self.params, keys))
            yield

    @contextlib.contextmanager
    def report(self) -> Iterator[Path]:
        """A staging folder for the stage's files: logged to its run under the stage's name,
        then moved into --out, only if the block succeeds."""
        with publish_files(self.args.out) as out:
            yield out
            runs.log_files(out, self.name.replace("-", "_"))
