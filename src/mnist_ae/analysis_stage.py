"""What the stages that analyse the trained model share: their command line, params, the train
stage's run record, the device and the model; then reopening the training's MLflow run to log
what they made, and publishing their files only once all of it succeeded."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import torch

from mnist_ae import tracking
from mnist_ae.checkpoints import MODEL_FILE, load_checkpoint
from mnist_ae.cli import stage_parser
from mnist_ae.devices import select_device
from mnist_ae.models import Autoencoder
from mnist_ae.params import Params, flatten, load_params
from mnist_ae.storage import publish_files


@dataclass
class AnalysisStage:
    args: argparse.Namespace
    params: Params
    run_record: dict
    device: torch.device

    @classmethod
    def from_command_line(
        cls, description: str | None, inputs: dict[str, str], uses_model: bool = True
    ) -> AnalysisStage:
        """Parse `--<input> PATH` for each of `inputs` (name -> help), `--model` (the train
        stage's folder) or `--run` (its run.json), and `--out`; check the run record before
        any work."""
        parser = stage_parser(description)
        for name, help_text in inputs.items():
            parser.add_argument(f"--{name}", type=Path, required=True, help=help_text)
        if uses_model:
            parser.add_argument(
                "--model", type=Path, required=True, help="the train stage's folder"
            )
        else:
            parser.add_argument(
                "--run", type=Path, required=True, help="the train stage's run.json"
            )
        parser.add_argument("--out", type=Path, required=True, help="folder for the reports")
        args = parser.parse_args()
        params = load_params(args.params)
        record_path = args.model / tracking.RUN_RECORD if uses_model else args.run
        record = tracking.read_run_record(record_path)
        return cls(args, params, record, select_device(params.train.device))

    def load_model(self) -> Autoencoder:
        return load_checkpoint(self.args.model / MODEL_FILE, self.device)

    @contextlib.contextmanager
    def tracked(self, keys: Iterable[str]) -> Iterator[mlflow.ActiveRun]:
        """The training's run, reopened, with the params `keys` this stage used logged."""
        tracking.setup(self.params.mlflow.experiment)
        with tracking.reopen_run(self.run_record["run_id"]) as run:
            tracking.log_params_once(flatten(self.params, keys))
            yield run

    @contextlib.contextmanager
    def report(self, artifact_dir: str) -> Iterator[Path]:
        """A staging folder for the stage's files: logged to the open run under `artifact_dir`,
        then moved into --out, only if the block succeeds."""
        with publish_files(self.args.out) as out:
            yield out
            mlflow.log_artifacts(str(out), artifact_dir)
