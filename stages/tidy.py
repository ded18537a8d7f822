"""DVC stage `tidy`: close the MLflow runs a killed stage left RUNNING and remove the checkpoint
of the training whose outputs are in place. It runs after every training (models/run.json
changes) and when the checkpoints folder changed, which is what a killed training leaves, also
when DVC restores the train stage from its run-cache instead of running it; with nothing left
behind, it does nothing."""

from __future__ import annotations

from mnist_ae.pipeline.tidy import tidy
from mnist_ae.plumbing.cli import run_stage, stage_arguments
from mnist_ae.plumbing.params import load_params
from mnist_ae.plumbing.repo import repo_root
from mnist_ae.tracking.run_record import read_run_record


def main() -> None:
    args = stage_arguments(__doc__, run="the train stage's run.json", checkpoints="as train's")
    params = load_params(args.params)
    record = read_run_record(args.run)

    done = tidy(repo_root(), params.mlflow.experiment, record, args.checkpoints)
    print("\n".join(done) if done else "nothing left behind by a killed stage")


if __name__ == "__main__":
    run_stage(main)
