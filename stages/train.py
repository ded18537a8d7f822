"""DVC stage `train`: fit the autoencoder, track it in MLflow and register it in the registry.
A checkpoint after every epoch lets a killed stage continue where it stopped."""

from __future__ import annotations

from pathlib import Path

from mnist_ae import tracked_training
from mnist_ae.cli import run_stage, stage_parser
from mnist_ae.params import load_params


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--processed", type=Path, required=True, help="clean splits")
    parser.add_argument("--noisy", type=Path, required=True, help="noisy splits")
    parser.add_argument("--noise-figure", type=Path, required=True, help="PNG logged to MLflow")
    parser.add_argument("--out", type=Path, required=True, help="directory for the model")
    parser.add_argument("--reports", type=Path, required=True, help="directory for losses")
    parser.add_argument(
        "--checkpoints",
        type=Path,
        required=True,
        help="folder of per-epoch checkpoints, outside the outputs (relative: to the main repo)",
    )
    args = parser.parse_args()
    params = load_params(args.params)

    job = tracked_training.Job.prepare(params, args.processed, args.noisy, args.checkpoints)
    outputs = tracked_training.Outputs(args.out, args.reports, args.noise_figure)
    result, registered, run_id = tracked_training.run(job, outputs)
    print(
        f"best val loss {result.best_val_loss:.5f} (epoch {result.best_epoch}); "
        f"{registered.name} version {registered.version}; MLflow run {run_id}"
    )


if __name__ == "__main__":
    run_stage(main)
