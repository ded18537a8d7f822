"""Denoise your own pictures of digits with the registry's champion.

    python -m mnist_ae.denoise pictures/ photo.jpg --out denoised/

Takes PNG and JPEG files, and every PNG and JPEG in a folder given. Each picture becomes the
denoiser's input the way MNIST drew its digits (mnist_ae.data.pictures says how, and where that
fails): a 28 x 28 picture as it is, a larger one converted; --fit or --as-is forces either. The
champion (`models:/<registered model>@champion` from MLFLOW_TRACKING_URI, else this repository's
mlflow.db; its signature and files checked first) denoises them all, and judges each with the
version's not-a-digit calibration: a picture whose score is above the version's threshold is
named in a line "not a digit", as its denoised picture means nothing. OUT gets one 28 x 28 PNG
per picture, white ink on black, named after it (never overwriting another's), verdicts.csv
(each picture's output, score and verdict), and contact-sheet.png: each picture (the first 64),
its conversion and the denoised digit side by side, those judged not digits framed in red. A
file it cannot take (not a PNG or JPEG, empty, too many pixels, a
decompression bomb, no ink) is named in one line; the others are still denoised, and the exit
status is then 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from mnist_ae.analysis import figures, not_a_digit
from mnist_ae.data.pictures import NoInkError, as_mnist, grayscale
from mnist_ae.data.pixels import to_uint8
from mnist_ae.plumbing.cli import run_stage
from mnist_ae.plumbing.outputs import publish_files, write_csv
from mnist_ae.plumbing.params import load_params
from mnist_ae.plumbing.repo import repo_root

PICTURES = {".png", ".jpg", ".jpeg"}
MAX_PIXELS = 25_000_000  # 5,000 x 5,000: a photo of a digit needs far fewer
SHEET = "contact-sheet.png"
VERDICTS = "verdicts.csv"
SHEET_PICTURES = 64  # the sheet shows the first ones: a page to look at, not a catalogue
Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow refuses what declares twice as many at open


class Refused(ValueError):
    """A file this command does not take; the message says why, in a few words."""


@dataclass
class Picture:
    path: Path
    pixels: np.ndarray  # as the person drew it, grayscale in [0, 1]
    converted: np.ndarray  # the denoiser's input, 28 x 28


def pictures_in(inputs: list[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The files to try, in order (a folder's PNG and JPEG files by name), and the inputs
    refused outright."""
    files, refused = [], []
    for path in inputs:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in PICTURES)
            files += found
            if not found:
                refused.append((path, "a folder with no PNG or JPEG picture in it"))
        elif path.is_file():
            files.append(path)
        else:
            refused.append((path, "no such file or folder"))
    return files, refused


def read(path: Path, fit: bool | None) -> Picture:
    """Open a PNG or JPEG (no other format: Pillow would hand EPS to Ghostscript), refuse
    what is empty, too large or a decompression bomb, and convert it."""
    if path.stat().st_size == 0:
        raise Refused("an empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=["PNG", "JPEG"]) as image:
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise Refused(f"{width} x {height} pixels, over the limit of {MAX_PIXELS:,}")
                image.load()
                pixels = grayscale(image)
                converted = as_mnist(image, fit)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise Refused(f"a decompression bomb (it declares over {MAX_PIXELS:,} pixels)") from None
    except UnidentifiedImageError:
        raise Refused("not a PNG or JPEG picture") from None
    except NoInkError as error:
        raise Refused(str(error)) from None
    except (OSError, SyntaxError, ValueError) as error:
        if isinstance(error, Refused):
            raise
        raise Refused(f"a damaged picture ({error})") from None
    return Picture(path, pixels, converted)


def output_names(pictures: list[Picture]) -> list[str]:
    """`<name>.png` for each picture; a name already given gets -2, -3, ..."""
    taken, names = {SHEET, VERDICTS}, []
    for picture in pictures:
        stem, number = picture.path.stem, 1
        name = f"{stem}.png"
        while name in taken:
            number += 1
            name = f"{stem}-{number}.png"
        taken.add(name)
        names.append(name)
    return names


def champion(params, into: Path):
    """The champion as a pyfunc, loaded from a checked copy, its not-a-digit calibration, and
    a line saying which it is."""
    from mnist_ae.tracking import registry, store

    store.connect_to_read(repo_root())
    name = params.mlflow.registered_model
    version, model = registry.load_verified(name, "@champion", into)
    score = version.tags.get("test_denoising_psnr")
    quality = f"test denoising PSNR {float(score):.3f} dB" if score else "no test PSNR recorded"
    about = f"model {name} version {version.version} (@champion), {quality}"
    label = f"{name} version {version.version}"
    return model, not_a_digit.of_model(model, label), about


def parser() -> argparse.ArgumentParser:
    """The command line, also for the docs' check of every command they show."""
    top = argparse.ArgumentParser(
        prog="python -m mnist_ae.denoise", description=__doc__.split("\n")[0]
    )
    top.add_argument("inputs", nargs="+", type=Path, help="PNG or JPEG files, or folders")
    top.add_argument("--out", type=Path, required=True, help="folder for the results")
    framing = top.add_mutually_exclusive_group()
    framing.add_argument(
        "--fit", dest="fit", action="store_true", default=None, help="convert every picture"
    )
    framing.add_argument(
        "--as-is", dest="fit", action="store_false", help="take 28 x 28 pictures as they are"
    )
    top.add_argument("--params", type=Path, help="params.yaml (default: the repository's)")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # MLflow's download progress bars would bury the lines that name each picture
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    params = load_params(args.params or repo_root() / "params.yaml")

    files, refused = pictures_in(args.inputs)
    pictures = []
    for path in files:
        try:
            pictures.append(read(path, args.fit))
        except Refused as why:
            refused.append((path, str(why)))
    for path, why in refused:
        print(f"error: {path}: {why}", file=sys.stderr)
    if pictures:
        with tempfile.TemporaryDirectory(prefix="champion-") as copy:
            model, calibration, about = champion(params, Path(copy))
            inputs = np.stack([p.converted for p in pictures])[:, None].astype(np.float32)
            outputs = np.asarray(model.predict(inputs))
        scores = calibration.scores(inputs, outputs)
        digits = calibration.is_digit(scores)
        denoised = outputs[:, 0]
        print(about)
        names = output_names(pictures)
        with publish_files(args.out) as staging:
            for name, digit in zip(names, denoised, strict=True):
                Image.fromarray(to_uint8(torch.from_numpy(digit)).numpy()).save(staging / name)
            rows = [
                {"picture": str(p.path), "output": name, "score": round(float(score), 6),
                 "is_digit": bool(digit)}
                for p, name, score, digit in zip(pictures, names, scores, digits, strict=True)
            ]  # fmt: skip
            write_csv(staging / VERDICTS, rows)
            shown = list(zip(pictures, denoised, strict=True))[:SHEET_PICTURES]
            figures.contact_sheet(
                [(p.path.name, p.pixels, p.converted, d) for p, d in shown],
                staging / SHEET,
                not_digits=[not digit for digit in digits[:SHEET_PICTURES]],
            )
        for picture, name in zip(pictures, names, strict=True):
            print(f"{picture.path} -> {args.out / name}")
        threshold = calibration.threshold
        for picture, score, digit in zip(pictures, scores, digits, strict=True):
            if not digit:
                print(
                    f"not a digit: {picture.path} (score {score:.2f} > {threshold:.2f}): "
                    "its denoised picture means nothing"
                )
        shown = (
            f"the first {SHEET_PICTURES} of {len(pictures)}"
            if len(pictures) > SHEET_PICTURES
            else "all"
        )
        print(f"contact sheet ({shown}): {args.out / SHEET}")
    return 1 if refused else 0


if __name__ == "__main__":
    run_stage(lambda: sys.exit(main()))
