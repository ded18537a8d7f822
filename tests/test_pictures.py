"""People's pictures as MNIST draws a digit: 28 x 28 ones taken as they are, larger ones framed in
a way noise cannot fool, the paper flattened to black, the digit placed as MNIST places it."""

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from mnist_ae.data.pictures import NoInkError, as_mnist, fit_into_mnist, grayscale, otsu_threshold


def drawn_seven(
    side: int = 112, ink: int = 20, paper: int = 235, noise: float = 0.0
) -> Image.Image:
    """A thick 7 in dark ink on light paper, away from the edges, with Gaussian noise."""
    image = Image.new("L", (side, side), paper)
    draw = ImageDraw.Draw(image)
    s = side / 112
    draw.line([(30 * s, 25 * s), (80 * s, 25 * s), (50 * s, 90 * s)], fill=ink, width=round(9 * s))
    pixels = np.asarray(image, np.float32) / 255
    noisy = pixels + noise * np.random.default_rng(0).standard_normal(pixels.shape)
    return Image.fromarray((np.clip(noisy, 0, 1) * 255).round().astype(np.uint8))


def box_of(pixels: np.ndarray, level: float = 0.05) -> tuple[int, int]:
    rows, cols = np.nonzero(pixels > level)
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


def test_otsu_splits_two_populations_between_them():
    values = np.concatenate([np.full(900, 0.1), np.full(100, 0.8)])
    assert 0.1 < otsu_threshold(values) < 0.8


def test_a_digit_is_fitted_into_20_pixels_and_centred_by_mass_at_14_14():
    placed = fit_into_mnist(np.ones((30, 4), np.float32))  # a 1 in its tight box
    assert placed.shape == (28, 28) and max(box_of(placed)) == 20
    rows, cols = ndimage.center_of_mass(placed)
    assert abs(rows - 14) <= 0.5 and abs(cols - 14) <= 0.5  # MNIST's own centre


@pytest.mark.parametrize("noise", [0.0, 0.1, 0.25])
def test_a_larger_picture_on_light_paper_is_framed_whatever_its_noise(noise):
    converted = as_mnist(drawn_seven(noise=noise))
    assert converted.shape == (28, 28) and converted.dtype == np.float32
    assert max(box_of(converted, 0.3)) == 20  # the digit, not the noisy paper, fills the box
    assert max(box_of(converted, 0.0)) == 20  # and the paper is flattened to black around it
    assert converted.max() > 0.9  # white ink
    rows, cols = ndimage.center_of_mass(converted)
    assert abs(rows - 14) <= 1 and abs(cols - 14) <= 1


def test_the_same_digit_converts_the_same_at_any_size():
    small, large = as_mnist(drawn_seven(112)), as_mnist(drawn_seven(448))
    # placed to the nearest whole pixel, as MNIST does: the two may differ by one
    shifted = [np.roll(large, (dy, dx), (0, 1)) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    assert min(float(np.abs(small - other).mean()) for other in shifted) < 0.02


def test_a_28_by_28_picture_is_taken_as_it_is_but_for_a_light_background():
    rng = np.random.default_rng(1)
    noisy = (np.clip(rng.normal(0.1, 0.4, (28, 28)), 0, 1) * 255).astype(np.uint8)
    noisy[6:22, 12:16] = 255  # white ink on black, noise and all
    assert np.array_equal(as_mnist(Image.fromarray(noisy)), noisy / np.float32(255))
    inverted = as_mnist(Image.fromarray(255 - noisy))
    assert np.allclose(inverted, noisy / 255, atol=1e-6)
    assert not np.array_equal(as_mnist(Image.fromarray(noisy), fit=True), noisy / 255)


def test_as_is_takes_only_28_by_28_and_a_blank_picture_has_no_ink():
    with pytest.raises(ValueError, match="only 28 x 28 is taken as is"):
        as_mnist(drawn_seven(), fit=False)
    for blank in (Image.new("L", (28, 28), 255), Image.new("L", (300, 200), 250)):
        with pytest.raises(NoInkError, match="no ink found"):
            as_mnist(blank)


def test_transparency_is_shown_on_white():
    image = Image.new("RGBA", (4, 4), (0, 0, 0, 0))  # transparent black
    assert np.all(grayscale(image) == 1.0)
