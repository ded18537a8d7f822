"""DVC stage `latent`: what the code space holds. Interpolation between two test digits decoded
as one strip, and the test set's codes on their first two principal axes, coloured by digit."""

from __future__ import annotations

from mnist_ae.analysis import figures
from mnist_ae.analysis.latent import encode, interpolate, project_2d
from mnist_ae.data.splits import first_of_each_digit, load_split, split_path
from mnist_ae.pipeline.analysis import AnalysisStage
from mnist_ae.plumbing.cli import run_stage
from mnist_ae.plumbing.outputs import write_csv

MAP_POINTS = 2000  # of the 10,000 in the PNG: enough for DVC's interactive scatter plot


def main() -> None:
    stage = AnalysisStage.from_command_line("latent", __doc__, {"processed": "clean splits"})
    params, device = stage.params, stage.device
    a, b = params.latent.interpolate
    with stage.tracked(("latent", "evaluate.batch_size")):
        model = stage.load_model()
        test = load_split(split_path(stage.args.processed, "test"))
        first, last = (first_of_each_digit(test.labels)[digit] for digit in (a, b))
        steps = params.latent.steps
        strip = interpolate(model, test.images[first], test.images[last], steps, device)
        points = project_2d(encode(model, test.images, params.evaluate.batch_size, device))
        with stage.report() as out:
            figures.image_rows([(f"{a} to {b}", strip)], out / "interpolation.png")
            figures.latent_scatter(points, test.labels, out / "latent_map.png")
            shown = zip(points[:MAP_POINTS], test.labels[:MAP_POINTS], strict=True)
            rows = [{"x": float(x), "y": float(y), "digit": int(d)} for (x, y), d in shown]
            write_csv(out / "latent_map.csv", rows)
    print(f"interpolated {a} -> {b} in {params.latent.steps} steps; mapped {len(points):,} codes")


if __name__ == "__main__":
    run_stage(main)
