"""Denoise your own pictures of digits with the registry's champion.

    python -m mnist_ae.denoise photo.png scan.jpg --out denoised/

Each picture (PNG or JPEG, any size, dark ink on light paper or light on dark) is converted the
way MNIST was made: grayscale, inverted when the background is light, the ink's bounding box
fitted into 20x20 pixels, then placed in a 28x28 image with its centre of mass in the middle.
The champion (`models:/<registered model>@champion`) is loaded from the configured store:
MLFLOW_TRACKING_URI, else this repository's mlflow.db. Each result is written to --out as a PNG
showing the converted input beside its denoised version. An unreadable file is reported and the
others are still processed; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from mnist_ae.plumbing.params import load_params
from mnist_ae.plumbing.repo import repo_root

BOX, SIDE = 20, 28  # MNIST: the digit fits a 20x20 box centred by mass in 28x28
INK = 0.2  # pixels darker than this share of the brightest are paper, not ink
SHOWN_SCALE = 8  # each 28x28 panel is drawn 224 pixels wide


def to_mnist(image: Image.Image) -> np.ndarray:
    """A picture of one digit as MNIST draws it: float32 28x28 in [0, 1], white ink on black."""
    pixels = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    if border.mean() > 0.5:  # dark ink on light paper: MNIST's ink is light
        pixels = 1.0 - pixels
    pixels = pixels - np.median(border if border.mean() <= 0.5 else 1.0 - border)
    pixels = np.clip(pixels / max(float(pixels.max()), 1e-6), 0.0, 1.0)
    rows, cols = np.nonzero(pixels > INK)
    if len(rows) == 0:
        return np.zeros((SIDE, SIDE), np.float32)
    ink = pixels[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    scale = BOX / max(ink.shape)
    size = (max(1, round(ink.shape[1] * scale)), max(1, round(ink.shape[0] * scale)))
    fitted = (
        np.asarray(
            Image.fromarray((ink * 255).astype(np.uint8)).resize(size, Image.Resampling.LANCZOS),
            dtype=np.float32,
        )
        / 255.0
    )
    mass = fitted.sum()
    centre_row = (fitted.sum(axis=1) * np.arange(fitted.shape[0])).sum() / mass
    centre_col = (fitted.sum(axis=0) * np.arange(fitted.shape[1])).sum() / mass
    top = int(np.clip(round(SIDE / 2 - 0.5 - centre_row), 0, SIDE - fitted.shape[0]))
    left = int(np.clip(round(SIDE / 2 - 0.5 - centre_col), 0, SIDE - fitted.shape[1]))
    digit = np.zeros((SIDE, SIDE), np.float32)
    digit[top : top + fitted.shape[0], left : left + fitted.shape[1]] = fitted
    return digit


def side_by_side(converted: np.ndarray, denoised: np.ndarray) -> Image.Image:
    """The converted input beside the champion's output, enlarged, with a thin gap."""
    gap = np.full((SIDE, 1), 0.5, np.float32)
    strip = np.concatenate([converted, gap, denoised], axis=1)
    image = Image.fromarray((np.clip(strip, 0, 1) * 255).round().astype(np.uint8))
    return image.resize((image.width * SHOWN_SCALE, SIDE * SHOWN_SCALE), Image.Resampling.NEAREST)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mnist_ae.denoise", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "inputs", nargs="+", type=Path, help="PNG or JPEG pictures of one digit each"
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the results")
    parser.add_argument(
        "--params",
        type=Path,
        default=None,
        help="params.yaml naming the registered model (default: the repository's)",
    )
    args = parser.parse_args(argv)
    params = load_params(args.params or repo_root() / "params.yaml")

    digits, names, failed = [], [], 0
    for path in args.inputs:
        try:
            with Image.open(path) as image:
                digits.append(to_mnist(image))
            names.append(path)
        except (OSError, UnidentifiedImageError, ValueError) as error:
            print(f"error: {path}: not a picture this command can read ({error})", file=sys.stderr)
            failed += 1
    if digits:
        import mlflow

        from mnist_ae.tracking import registry, store

        store.connect(params.mlflow.experiment, repo_root())
        with tempfile.TemporaryDirectory(prefix="champion-") as copy:
            name = params.mlflow.registered_model
            _, local = registry.verified_copy(name, "@champion", Path(copy))
            model = mlflow.pyfunc.load_model(str(local))
            denoised = model.predict(np.stack(digits)[:, None].astype(np.float32))[:, 0]
        args.out.mkdir(parents=True, exist_ok=True)
        for path, converted, result in zip(names, digits, denoised, strict=True):
            target = args.out / f"{path.stem}.png"
            side_by_side(converted, result).save(target)
            print(f"{path} -> {target}")
    return 1 if failed else 0


if __name__ == "__main__":
    from mnist_ae.plumbing.cli import run_stage

    run_stage(lambda: sys.exit(main()))
