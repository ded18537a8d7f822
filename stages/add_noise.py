"""DVC stage `add-noise`: seeded Gaussian noise on every split, plus a clean-above-noisy figure."""

from __future__ import annotations

from pathlib import Path

from mnist_ae import figures
from mnist_ae.cli import run_stage, stage_parser
from mnist_ae.datasets import Split, first_of_each_digit, load_splits, save_split, split_path
from mnist_ae.noise import add_gaussian_noise, split_rng
from mnist_ae.params import load_params
from mnist_ae.storage import atomic_path


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--processed", type=Path, required=True, help="directory of clean splits")
    parser.add_argument("--out", type=Path, required=True, help="directory for noisy splits")
    parser.add_argument("--figure", type=Path, required=True, help="PNG of examples")
    args = parser.parse_args()
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
                ("clean", clean["test"].images[columns] / 255.0),
                (f"noisy\nstd {params.noise.std}", noisy["test"].images[columns] / 255.0),
            ],
            figure_tmp,
            column_titles=[str(d) for d in clean["test"].labels[columns]],
        )
    print(f"noise std {params.noise.std} on {', '.join(noisy)} -> {args.out}")


if __name__ == "__main__":
    run_stage(main)
