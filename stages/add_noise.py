"""DVC stage `add-noise`: seeded Gaussian noise on every split, plus a clean-above-noisy figure."""

from __future__ import annotations

from mnist_ae.analysis import figures
from mnist_ae.data.noise import add_gaussian_noise, split_rng
from mnist_ae.data.pixels import to_unit
from mnist_ae.data.splits import Split, first_of_each_digit, load_splits, save_split, split_path
from mnist_ae.plumbing.cli import run_stage, stage_arguments
from mnist_ae.plumbing.outputs import atomic_path
from mnist_ae.plumbing.params import load_params


def main() -> None:
    args = stage_arguments(__doc__, processed="clean splits", out="noisy splits", figure="a PNG")
    params = load_params(args.params)

    clean = load_splits(args.processed)
    noisy = {
        name: Split(
            add_gaussian_noise(s.images, params.noise.std, split_rng(params.seed, name)), s.labels
        )
        for name, s in clean.items()
    }
    columns = first_of_each_digit(clean["test"].labels)
    with atomic_path(args.out, is_dir=True) as out_tmp, atomic_path(args.figure) as figure_tmp:
        for name, split in noisy.items():
            save_split(split_path(out_tmp, name), split)
        figures.image_rows(
            [
                ("clean", to_unit(clean["test"].images[columns])),
                (f"noisy\nstd {params.noise.std}", to_unit(noisy["test"].images[columns])),
            ],
            figure_tmp,
            column_titles=[str(d) for d in clean["test"].labels[columns]],
        )
    print(f"noise std {params.noise.std} on {', '.join(noisy)} -> {args.out}")


if __name__ == "__main__":
    run_stage(main)
