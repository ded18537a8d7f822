"""DVC stage `latent`: what the code space holds. Interpolation between two test digits decoded
as one strip, and the test set's codes on their first two principal axes, coloured by digit."""

from __future__ import annotations

from pathlib import Path

import mlflow

from mnist_ae import figures, tracking
from mnist_ae.analysis import encode, interpolate, project_2d
from mnist_ae.checkpoints import load_checkpoint
from mnist_ae.cli import run_stage, stage_parser
from mnist_ae.datasets import first_of_each_digit, load_split
from mnist_ae.devices import select_device
from mnist_ae.params import flatten, load_params
from mnist_ae.storage import publish_files, write_csv

MAP_POINTS = 2000  # of the 10,000 in the PNG: enough for DVC's interactive scatter plot


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--processed", type=Path, required=True, help="clean splits")
    parser.add_argument("--model", type=Path, required=True, help="the train stage's directory")
    parser.add_argument("--out", type=Path, required=True, help="directory for the figures")
    args = parser.parse_args()
    params = load_params(args.params)
    run_record = tracking.read_run_record(args.model / tracking.RUN_RECORD)
    device = select_device(params.train.device)

    model = load_checkpoint(args.model / "model.pt", device)
    test = load_split(args.processed / "test.npz")
    first, last = (first_of_each_digit(test.labels)[d] for d in params.latent.interpolate)
    strip = interpolate(model, test.images[first], test.images[last], params.latent.steps, device)
    points = project_2d(encode(model, test.images, params.evaluate.batch_size, device))
    with publish_files(args.out) as out:
        a, b = params.latent.interpolate
        figures.image_rows([(f"{a} to {b}", strip)], out / "interpolation.png")
        figures.latent_scatter(points, test.labels, out / "latent_map.png")
        write_csv(out / "latent_map.csv", [
            {"x": float(x), "y": float(y), "digit": int(d)}
            for (x, y), d in zip(points[:MAP_POINTS], test.labels[:MAP_POINTS], strict=True)
        ])  # fmt: skip
        tracking.setup(params.mlflow.experiment)
        with tracking.resume_run(run_record["run_id"]):
            tracking.log_params_once(flatten(params, ("latent",)))
            mlflow.log_artifacts(str(out), "latent")
    print(f"interpolated {a} -> {b} in {params.latent.steps} steps; mapped {len(points):,} codes")


if __name__ == "__main__":
    run_stage(main)
