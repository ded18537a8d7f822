"""DVC stage `train`: fit the autoencoder, track it in MLflow and register it in the registry.
A checkpoint after every epoch lets a killed stage continue where it stopped."""

from __future__ import annotations

from mnist_ae.data.splits import training_arrays
from mnist_ae.plumbing.cli import run_stage, stage_arguments
from mnist_ae.plumbing.params import load_params
from mnist_ae.plumbing.repo import repo_root
from mnist_ae.tracking import store


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
    # The splits and the store first: one that is broken fails in a fraction of a second, not
    # after the 4 s it takes to import torch and MLflow.
    p = params.train
    data = training_arrays(args.processed, args.noisy, p.denoise, p.fresh_noise)
    store.check_before_connecting(repo_root())
    from mnist_ae.pipeline import train

    job = train.Job.prepare(params, data, args.checkpoints)
    outputs = train.Outputs(args.out, args.reports, args.noise_figure)
    result, record = train.run(job, outputs)
    print(
        f"best val loss {result.best_val_loss:.5f} (epoch {result.best_epoch}); "
        f"{record.registered_model} version {record.version}; MLflow run {record.run_id}"
    )


if __name__ == "__main__":
    run_stage(main)
