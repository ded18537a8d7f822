"""People's pictures of one digit each, drawn the way MNIST drew its digits: 28 x 28 pixels in
[0, 1], white ink on black, the digit fitted into a 20 x 20 box and centred by its centre of mass.

A picture that is already 28 x 28 is taken as it is (inverted if its background is light): it
is the denoiser's own kind of input, noise included. A larger picture is converted:

1. grayscale in [0, 1], inverted when the paper is lighter than the ink (the border's median
   tells which);
2. the paper's level is the border's median; the picture is smoothed (a Gaussian of about
   1/60 of its size), so that noise does not count as ink, and Otsu's global threshold on the
   smoothed picture separates ink from paper;
3. the digit is the largest connected region of ink, with every region at least a fifth its
   size (a 4 or a 5 written in two strokes); its bounding box frames the digit;
4. in that box the paper is flattened to black: pixels are scaled from the paper's level (0) to
   the ink's (its 90th percentile, 1), and whatever lies outside the ink regions, a little
   grown, becomes 0;
5. the box is resized to fit 20 x 20 (its aspect kept) and placed in 28 x 28 with its centre of
   mass in the middle, as MNIST did.

Where it fails: several digits or a long word in one picture (the largest gets framed), ink
touching the picture's edge on all sides (taken for paper), very faint ink on a busy background
(Otsu's threshold needs two populations), and strokes much thicker or thinner than a pen's at
MNIST's scale (the network saw only MNIST's).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from mnist_ae.data.pixels import to_uint8, to_unit

SIDE, BOX = 28, 20  # MNIST: the digit fits a 20x20 box centred by mass in 28x28
KEEP_SHARE = 0.2  # ink regions at least this share of the largest are part of the digit
INK_LEVEL = 90  # percentile of the ink region's pixels taken as full ink


class NoInkError(ValueError):
    """The picture holds nothing that stands out from its paper."""


def grayscale(image: Image.Image) -> np.ndarray:
    """Pixels in [0, 1]; transparency composited on white (how a viewer shows it)."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return _unit(image.convert("L"))


def _unit(image: Image.Image) -> np.ndarray:
    """An 8-bit grayscale picture's pixels in [0, 1], scaled as MNIST's are (data.pixels)."""
    return to_unit(np.array(image)).numpy()  # a copy: torch takes no read-only array


def _border(pixels: np.ndarray) -> np.ndarray:
    return np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])


def light_on_dark(pixels: np.ndarray) -> np.ndarray:
    """White ink on black: inverted when the border (the paper) is the lighter half."""
    return 1.0 - pixels if np.median(_border(pixels)) > 0.5 else pixels


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """The level that best splits `values` into two classes (Otsu, 1979)."""
    counts, edges = np.histogram(values, bins=bins, range=(0.0, 1.0))
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(counts)
    mass = np.cumsum(counts * centres)
    total_weight, total_mass = weight[-1], mass[-1]
    below = weight[:-1].astype(np.float64)
    above = total_weight - below
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (total_mass * below - mass[:-1] * total_weight) ** 2 / (below * above)
    return float(edges[1:-1][np.nanargmax(np.nan_to_num(between, nan=-1.0))])


def ink_regions(pixels: np.ndarray) -> np.ndarray:
    """A boolean mask of the digit's ink in white-on-black pixels."""
    sigma = max(1.0, max(pixels.shape) / 60)
    smooth = ndimage.gaussian_filter(pixels, sigma)
    threshold = otsu_threshold(smooth)
    paper = float(np.median(_border(smooth)))
    if threshold <= paper + 0.05:  # no second population above the paper
        raise NoInkError("no ink found (a blank picture?)")
    labels, count = ndimage.label(smooth > threshold)
    sizes = ndimage.sum_labels(np.ones_like(labels), labels, index=np.arange(1, count + 1))
    kept = 1 + np.flatnonzero(sizes >= KEEP_SHARE * sizes.max())
    return np.isin(labels, kept)


def fit_into_mnist(digit: np.ndarray) -> np.ndarray:
    """A digit (white on black, tight box) resized into 20 x 20 and centred by mass in 28 x 28."""
    height, width = digit.shape
    scale = BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = Image.fromarray(to_uint8(torch.from_numpy(np.asarray(digit, np.float32))).numpy())
    fitted = _unit(image.resize(size, Image.Resampling.LANCZOS))
    rows, cols = ndimage.center_of_mass(fitted)
    # MNIST's digits have their centre of mass at pixel (14, 14), measured: 13.99 and 14.01 on
    # average over the test set, not at the middle of the grid (13.5)
    top = int(np.clip(round(SIDE / 2 - rows), 0, SIDE - fitted.shape[0]))
    left = int(np.clip(round(SIDE / 2 - cols), 0, SIDE - fitted.shape[1]))
    placed = np.zeros((SIDE, SIDE), np.float32)
    placed[top : top + fitted.shape[0], left : left + fitted.shape[1]] = fitted
    return placed


def convert(pixels: np.ndarray) -> np.ndarray:
    """A larger picture (grayscale in [0, 1]) as MNIST draws a digit (steps 1-5 above)."""
    pixels = light_on_dark(pixels)
    mask = ink_regions(pixels)
    rows, cols = np.nonzero(mask)
    box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    paper = float(np.median(_border(pixels)))
    ink = float(np.percentile(pixels[mask], INK_LEVEL))
    flattened = np.clip((pixels - paper) / max(ink - paper, 1e-6), 0.0, 1.0)
    grown = ndimage.binary_dilation(mask, iterations=max(1, round(max(pixels.shape) / 56)))
    flattened[~grown] = 0.0
    return fit_into_mnist(flattened[box])


def as_mnist(image: Image.Image, fit: bool | None = None) -> np.ndarray:
    """A picture as the denoiser's input: float32 28 x 28 in [0, 1], white ink on black.
    `fit`: None takes a 28 x 28 picture as it is and converts any other; True converts it
    anyway; False takes it as it is (it must be 28 x 28)."""
    pixels = grayscale(image)
    is_mnist_sized = pixels.shape == (SIDE, SIDE)
    if fit is False and not is_mnist_sized:
        raise ValueError(
            f"{pixels.shape[1]} x {pixels.shape[0]} pixels: only 28 x 28 is taken as is"
        )
    if fit is None:
        fit = not is_mnist_sized
    if not fit:
        pixels = light_on_dark(pixels)
        if float(pixels.max()) - float(np.median(_border(pixels))) < 0.1:
            raise NoInkError("no ink found (a blank picture?)")
        return pixels
    return convert(pixels)


LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
STROKES = (0, 2, 4)  # extra stroke widths at 80 px: a pen's line, then MNIST-like thicker ones


def printed_letters() -> np.ndarray:
    """Every Latin letter, upper and lower case, printed white on black in Pillow's own font
    (bundled with Pillow, so the same on every machine) at each stroke width of STROKES, and
    converted as a picture of a digit is: uint8, N x 28 x 28."""
    from PIL import ImageDraw, ImageFont

    font = ImageFont.load_default(size=80)
    letters = []
    for stroke in STROKES:
        for letter in LETTERS:
            image = Image.new("L", (128, 128), 0)
            ImageDraw.Draw(image).text(
                (64, 64), letter, fill=255, font=font, anchor="mm", stroke_width=stroke,
                stroke_fill=255,
            )  # fmt: skip
            letters.append(as_mnist(image, fit=True))
    return to_uint8(torch.from_numpy(np.stack(letters))).numpy()
