"""DVC stage `train`: fit the autoencoder, track it in MLflow and register it in the registry.
A checkpoint after every epoch lets a killed stage continue where it stopped."""

from __future__ import annotations

from mnist_ae.pipeline import train
from mnist_ae.plumbing.cli import run_stage, stage_arguments
from mnist_ae.plumbing.params import load_params


def main() -> None:
    args = stage_arguments(
        __doc__,
        processed="clean splits",
        noisy="noisy splits",
        noise_figure="add-noise's PNG, logged to MLflow",
        out="folder for the model",
        reports="folder for the losses",
        checkpoints="per-epoch checkpoints, outside the outputs (relative: to the main repo)",
    )
    params = load_params(args.params)

    job = train.Job.prepare(params, args.processed, args.noisy, args.checkpoints)
    outputs = train.Outputs(args.out, args.reports, args.noise_figure)
    result, record = train.run(job, outputs)
    print(
        f"best val loss {result.best_val_loss:.5f} (epoch {result.best_epoch}); "
        f"{record.registered_model} version {record.version}; MLflow run {record.run_id}"
    )


if __name__ == "__main__":
    run_stage(main)
