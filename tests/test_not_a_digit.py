"""The not-a-digit calibration a version carries: its score, its threshold, and what it refuses
to load (the end-to-end test serves a real version and checks its verdicts over HTTP)."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_ae.analysis import not_a_digit
from mnist_ae.analysis.not_a_digit import Calibration, CalibrationError
from mnist_ae.data.pictures import STROKES, printed_letters


def strokes(n: int, seed: int) -> np.ndarray:
    """N x 1 x 28 x 28 pictures of one vertical bar each, somewhere in the middle."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 1, 28, 28), np.float32)
    for image, column in zip(images, rng.integers(8, 18, n), strict=True):
        image[0, 6:22, column : column + 3] = 1
    return images


def noisy(images: np.ndarray, std: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(images + std * rng.standard_normal(images.shape, dtype=np.float32), 0, 1)


def bar_denoiser(images: np.ndarray) -> np.ndarray:
    """A 'model' that knows only bars: the brightest 3 columns of rows 6-22 drawn a little
    dimmer (no model is perfect), the rest black."""
    out = np.zeros_like(images)
    for image, result in zip(images, out, strict=True):
        column = int(np.argmax(np.convolve(image[0, 6:22].sum(0), np.ones(3), "valid")))
        result[0, 6:22, column : column + 3] = 0.9
    return out


def denoised(levels: dict) -> dict:
    """Each level's pictures with the bar denoiser's outputs for them, as calibrate takes them."""
    return {level: (images, bar_denoiser(images)) for level, images in levels.items()}


@pytest.fixture(scope="module")
def calibration() -> Calibration:
    clean = strokes(2000, 0)
    levels = {level: noisy(clean, level, 1) if level else clean for level in (0, 0.2, 0.4)}
    return not_a_digit.calibrate(denoised(levels), 0.01)


def test_roughness_is_the_mean_horizontal_step_between_pixels():
    flat, stripes = np.full((1, 28, 28), 0.3), np.tile([0.0, 1.0], (1, 28, 14))
    assert not_a_digit.roughness(flat) == 0 and not_a_digit.roughness(stripes) == 1


def test_the_threshold_flags_the_false_alarm_rate_of_the_noisy_validation_pictures(calibration):
    assert calibration.levels == [0, 0.2, 0.4] and calibration.noise_std == 0.4
    assert np.all(np.diff(calibration.level_roughness) > 0)
    assert calibration.flagged_noisy == pytest.approx(0.01, abs=0.001)
    assert calibration.flagged_clean <= 0.01 and calibration.validation_images == 2000
    again = noisy(strokes(2000, 5), 0.4, 6)  # other bars, other noise: about the same share
    share = np.mean(~calibration.is_digit(calibration.scores(again, bar_denoiser(again))))
    assert share < 0.03


def test_the_score_is_the_error_over_the_reference_for_the_input_s_roughness(calibration):
    clean = strokes(3, 9)
    output = bar_denoiser(clean) * 0.5
    error = ((clean - output) ** 2).reshape(3, -1).mean(1)
    reference = calibration.reference_error[0]  # clean: rougher than no level, flat at the end
    assert np.allclose(calibration.scores(clean, output), error / reference)


def test_what_the_model_does_not_know_is_judged_not_a_digit_clean_or_noisy(calibration):
    blobs = np.zeros((50, 1, 28, 28), np.float32)
    blobs[:, 0, 4:24, 4:24] = 0.6  # a grey square: not a bar
    for pictures in (blobs, noisy(blobs, 0.4, 3)):
        assert not calibration.is_digit(calibration.scores(pictures, bar_denoiser(pictures))).any()
    bars = strokes(50, 4)
    assert calibration.is_digit(calibration.scores(bars, bar_denoiser(bars))).all()


def test_a_calibration_survives_its_json_and_a_malformed_one_is_named(calibration):
    data = calibration.as_dict()
    assert Calibration.from_dict(data, "v") == calibration
    missing = {k: v for k, v in data.items() if k != "threshold"}
    with pytest.raises(
        CalibrationError, match=r"^version 3: the not-a-digit calibration lacks threshold$"
    ):
        Calibration.from_dict(missing, "version 3")
    for broken in ({"reference_error": [0.1, -1.0, 0.2]}, {"level_roughness": [0.3, 0.2, 0.1]},
                   {"threshold": "high"}, {"levels": [0.0]}):  # fmt: skip
        with pytest.raises(
            CalibrationError, match=r"^v: the not-a-digit calibration is malformed$"
        ):
            Calibration.from_dict(data | broken, "v")


def test_a_version_without_a_calibration_is_refused_in_one_line(tmp_path):
    class Loaded:  # what mlflow.pyfunc.load_model returns, as far as the verdict reads it
        class metadata:
            metadata = None

    with pytest.raises(CalibrationError) as refused:
        not_a_digit.of_model(Loaded(), "ae version 2")
    assert str(refused.value).startswith("ae version 2 carries no not-a-digit calibration")
    (tmp_path / "calibration.json").write_text("{not json")
    with pytest.raises(CalibrationError, match=r"calibration\.json: not a calibration"):
        not_a_digit.read(tmp_path / "calibration.json")
    with pytest.raises(CalibrationError, match="missing; rerun the train stage"):
        not_a_digit.read(tmp_path / "none.json")


def test_without_noise_the_calibration_has_one_level():
    assert not_a_digit.noise_levels(0) == [0.0]
    assert not_a_digit.noise_levels(0.4) == [0.0, 0.1, 0.2, 0.3, 0.4]


def test_printed_letters_are_every_letter_at_each_stroke_width_the_same_everywhere():
    letters = printed_letters()
    assert letters.shape == (52 * len(STROKES), 28, 28) and letters.dtype == np.uint8
    assert np.array_equal(letters, printed_letters())
    ink = (letters > 127).reshape(len(letters), -1).sum(1)
    assert ink.min() > 10  # every one drawn
    # thicker strokes, more ink: the same letters, one width after the other
    assert ink[:52].mean() < ink[52:104].mean() < ink[104:].mean()


def test_levels_that_do_not_get_rougher_still_make_a_calibration():
    """Made-up validation pictures whose 'noisy' copy is smoother than their clean one (real
    noise never is): the levels' roughness is made to increase, and the verdict works."""
    rough = np.random.default_rng(0).random((300, 1, 28, 28)).astype(np.float32)
    smooth = np.full_like(rough, 0.5)
    made = not_a_digit.calibrate(denoised({0: rough, 0.2: rough, 0.4: smooth}), 0.01)
    assert np.all(np.diff(made.level_roughness) > 0)
    assert made.flagged_noisy <= 0.01 + 1 / 300
