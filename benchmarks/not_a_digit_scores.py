"""Which not-a-digit score: the candidates docs/metrics.md weighs, each with its threshold set on
the validation digits for 1 % false alarms, measured on the pipeline's model and data.

    python benchmarks/not_a_digit_scores.py --out docs/results/not-a-digit-scores.json

Run in a checkout after `dvc repro` (it reads models/, data/processed, data/noisy and
data/fashion). The candidates, each flagging a picture when its score is above the threshold:

- error, clean threshold: the reconstruction MSE, threshold on clean validation digits (the
  anomaly stage's, the origin article's);
- error, noisy threshold: the same score, threshold on add-noise's noisy validation digits;
- re-reconstruction: the MSE between the output and the output passed through the network again
  (twice the inference per picture), threshold on the noisy validation digits;
- the version's own (analysis.not_a_digit): the MSE over the reference error for the input's
  roughness, threshold on the noisy validation digits.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from machine import machine

from mnist_ae.analysis import not_a_digit
from mnist_ae.data.noise import add_gaussian_noise, split_rng
from mnist_ae.data.pictures import printed_letters
from mnist_ae.data.splits import load_split
from mnist_ae.model.model_file import MODEL_FILE, load_model

RATE = 0.01


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="a JSON file for the figures and the machine")
    args = parser.parse_args()
    model = load_model(Path("models") / MODEL_FILE, torch.device("cpu")).eval()

    @torch.inference_mode()
    def denoise(images: np.ndarray) -> np.ndarray:
        parts = [model(torch.from_numpy(images[i : i + 1000])) for i in range(0, len(images), 1000)]
        return torch.cat(parts).numpy()

    def unit(images: np.ndarray) -> np.ndarray:
        return (images.astype(np.float32) / 255)[:, None]

    calibration = not_a_digit.read(Path("models") / not_a_digit.FILE)
    seed, std = 42, calibration.noise_std  # the default params'
    fashion = load_split("data/fashion/test.npz").images
    letters = printed_letters()
    noisy_fashion = add_gaussian_noise(fashion, std, split_rng(seed, "not-a-digit", 0))
    uniform = split_rng(seed, "not-a-digit", 2).integers(0, 256, (1000, 28, 28), np.uint8)
    sets = {
        "validation digits, clean": load_split("data/processed/val.npz").images,
        "validation digits, noisy": load_split("data/noisy/val.npz").images,
        "MNIST test, clean": load_split("data/processed/test.npz").images,
        "MNIST test, noisy": load_split("data/noisy/test.npz").images,
        "Fashion-MNIST test, clean": fashion,
        "Fashion-MNIST test, noisy": noisy_fashion,
        "printed letters, clean": letters,
        "uniform noise": uniform,
    }
    inputs = {name: unit(images) for name, images in sets.items()}
    outputs = {name: denoise(images) for name, images in inputs.items()}
    error = {n: not_a_digit.reconstruction_error(inputs[n], outputs[n]) for n in sets}
    again = {n: not_a_digit.reconstruction_error(outputs[n], denoise(outputs[n])) for n in sets}
    ours = {n: calibration.scores(inputs[n], outputs[n]) for n in sets}

    def flagged(scores: dict[str, np.ndarray], calibrated_on: str) -> dict[str, float]:
        threshold = np.quantile(scores[calibrated_on], 1 - RATE)
        return {name: round(float(np.mean(s > threshold)), 4) for name, s in scores.items()}

    candidates = {
        "error, clean threshold": flagged(error, "validation digits, clean"),
        "error, noisy threshold": flagged(error, "validation digits, noisy"),
        "re-reconstruction, noisy threshold": flagged(again, "validation digits, noisy"),
        "the version's own": {
            name: round(float(np.mean(~calibration.is_digit(s))), 4) for name, s in ours.items()
        },
    }
    names = list(sets)
    print("candidate".ljust(36) + "  ".join(f"{n[:22]:>22s}" for n in names))
    for candidate, shares in candidates.items():
        print(candidate.ljust(36) + "  ".join(f"{shares[n]:22.2%}" for n in names))
    if args.out is not None:
        record = {"machine": machine(), "false_alarm_rate": RATE, "flagged": candidates}
        args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
