"""The not-a-digit verdict each registered version carries: a score for any input the denoiser
gets, clean or noisy, and the threshold above which the input is judged not to be a digit.

The score is the reconstruction error (per-image MSE between the input and the model's output)
divided by a reference error for inputs as rough as this one. A noisy digit's error contains
its noise (about 0.08 at the pipeline's noise, seven times a clean garment's error), so one
threshold on the raw error would either pass every clean garment or flag every noisy digit.
The reference is the (1 - false-alarm rate) quantile of validation digits' error at noise levels
0, 1/4, ..., 4/4 of the training noise, as a piecewise-linear function of the levels' median
roughness (the mean absolute difference of horizontally adjacent pixels), flat beyond both
ends. The threshold is the (1 - rate) quantile of the score on add-noise's noisy validation
digits. docs/metrics.md compares this with the other scores tried.

Numpy only: serve and denoise compute it next to the model's output.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from mnist_ae.plumbing.errors import PipelineError

FILE = "calibration.json"  # the train stage's copy, beside the model
LEVELS = 4  # noise levels above 0 the reference error is measured at, up to the training noise
MIN_ERROR = 1e-6  # a reference error below this (60 dB) counts as this: no division by 0
METADATA_KEY = "not_a_digit"  # the calibration's key in a logged model's MLmodel metadata


class CalibrationError(PipelineError, ValueError):
    """A version's calibration is missing or malformed."""


def _scores(
    inputs: np.ndarray, outputs: np.ndarray, level_roughness: list[float], reference: list[float]
) -> np.ndarray:
    """Each input's error over the reference error interpolated at its roughness."""
    return reconstruction_error(inputs, outputs) / np.interp(
        roughness(inputs), level_roughness, reference
    )


def roughness(images: np.ndarray) -> np.ndarray:
    """Mean absolute difference of horizontally adjacent pixels, per image (N x 1 x 28 x 28 or
    N x 28 x 28 floats in [0, 1]): near 0.07 for clean digits, 0.25 at the pipeline's noise."""
    flat = images.reshape(len(images), -1, images.shape[-1])
    return np.abs(np.diff(flat, axis=2)).mean(axis=(1, 2))


def reconstruction_error(inputs: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """Per-image MSE between inputs and the model's outputs (same shapes)."""
    difference = inputs.reshape(len(inputs), -1) - outputs.reshape(len(outputs), -1)
    return np.square(difference).mean(axis=1)


@dataclass(frozen=True)
class Calibration:
    false_alarm_rate: float  # the share of noisy validation digits above the threshold
    noise_std: float  # the training noise: the top level
    levels: list[float]  # noise std of each reference level, 0 first
    level_roughness: list[float]  # each level's median roughness (increasing)
    reference_error: list[float]  # each level's (1 - rate) quantile of reconstruction error
    threshold: float  # on the score: above it, "not a digit"
    validation_images: int
    flagged_clean: float  # share of clean validation digits above the threshold
    flagged_noisy: float  # share of noisy validation digits above it (the rate, by design)

    def scores(self, inputs: np.ndarray, outputs: np.ndarray) -> np.ndarray:
        """The score of each input (float64, N): its error over the reference for its roughness."""
        return _scores(inputs, outputs, self.level_roughness, self.reference_error)

    def is_digit(self, scores: np.ndarray) -> np.ndarray:
        return scores <= self.threshold

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, object], where: str) -> Calibration:
        """The calibration stored in `where` (a version, a file); a clear error if it is not
        one."""
        if not isinstance(data, Mapping):
            raise CalibrationError(f"{where} carries no not-a-digit calibration")
        missing = [f.name for f in fields(cls) if f.name not in data]
        if missing:
            raise CalibrationError(
                f"{where}: the not-a-digit calibration lacks {', '.join(missing)}"
            )
        try:
            calibration = cls(**{f.name: data[f.name] for f in fields(cls)})
            roughs = np.asarray(calibration.level_roughness, float)
            errors = np.asarray(calibration.reference_error, float)
            valid = (
                len(roughs) == len(errors) == len(calibration.levels) >= 1
                and np.all(np.diff(roughs) > 0)
                and np.all(errors > 0)
                and float(calibration.threshold) > 0
            )
        except (TypeError, ValueError):
            valid = False
        if not valid:
            raise CalibrationError(f"{where}: the not-a-digit calibration is malformed")
        return calibration


def read(path: Path) -> Calibration:
    """The calibration the train stage wrote beside the model."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CalibrationError(
            f"{path}: missing; rerun the train stage (dvc repro train)"
        ) from None
    except (OSError, ValueError) as error:
        raise CalibrationError(
            f"{path}: not a calibration ({error}); restore it with `dvc checkout` or rerun the "
            "train stage (dvc repro --force train)"
        ) from None
    return Calibration.from_dict(data, str(path))


def of_model(model: object, where: str) -> Calibration:
    """The calibration in a loaded pyfunc model's MLmodel metadata (`where` names the version in
    an error: one registered before versions carried it has none)."""
    metadata = getattr(getattr(model, "metadata", None), "metadata", None) or {}
    found = metadata.get(METADATA_KEY)
    if found is None:
        raise CalibrationError(
            f"{where} carries no not-a-digit calibration (registered before versions carried "
            "one): retrain it (dvc repro --force train)"
        )
    return Calibration.from_dict(found, where)


def noise_levels(noise_std: float) -> list[float]:
    """0, then LEVELS evenly spaced levels up to the training noise (only 0 without noise)."""
    if noise_std <= 0:
        return [0.0]
    return [round(noise_std * k / LEVELS, 6) for k in range(LEVELS + 1)]


def increasing(values: list[float]) -> list[float]:
    """`values` made strictly increasing (each at least the next float above the one before):
    noise makes real pictures rougher level by level, but not every made-up test set does."""
    made = [values[0]]
    for value in values[1:]:
        made.append(max(value, float(np.nextafter(made[-1], np.inf))))
    return made


def calibrate(
    at_levels: Mapping[float, tuple[np.ndarray, np.ndarray]], false_alarm_rate: float
) -> Calibration:
    """The calibration of a model from the validation digits at each noise level and its
    outputs for them (`at_levels`: level -> (inputs, outputs), N x 1 x 28 x 28 floats; 0 the
    clean digits, the highest add-noise's noisy copy)."""
    levels = sorted(at_levels)
    level_roughness = increasing(
        [float(np.median(roughness(at_levels[level][0]))) for level in levels]
    )
    reference = [
        max(float(np.quantile(reconstruction_error(*at_levels[level]), 1 - false_alarm_rate)),
            MIN_ERROR)
        for level in levels
    ]  # fmt: skip
    clean, noisy = levels[0], levels[-1]
    noisy_scores = _scores(*at_levels[noisy], level_roughness, reference)
    threshold = float(np.quantile(noisy_scores, 1 - false_alarm_rate))
    clean_scores = _scores(*at_levels[clean], level_roughness, reference)
    calibration = Calibration(
        false_alarm_rate=false_alarm_rate,
        noise_std=noisy,
        levels=levels,
        level_roughness=level_roughness,
        reference_error=reference,
        threshold=threshold,
        validation_images=len(at_levels[noisy][0]),
        flagged_clean=float(np.mean(clean_scores > threshold)),
        flagged_noisy=float(np.mean(noisy_scores > threshold)),
    )
    return Calibration.from_dict(calibration.as_dict(), "the calibration just made")
