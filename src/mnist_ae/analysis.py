"""What the code space holds: interpolation between two digits, a 2-D map of the test codes, and
anomaly detection by reconstruction error."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mnist_ae.datasets import to_unit
from mnist_ae.evaluation import batched, reconstruct
from mnist_ae.metrics import per_image_mse
from mnist_ae.models import Autoencoder, to_model_input
from mnist_ae.pca import PCA


def encode(
    model: Autoencoder, images: np.ndarray, batch_size: int, device: torch.device
) -> torch.Tensor:
    """Codes of uint8 images (N x 28 x 28), flattened to N x code_size, on the CPU."""
    model.eval()
    return batched(lambda x: model.encode(x).flatten(1), images, batch_size, device)


@torch.inference_mode()
def interpolate(
    model: Autoencoder, first: np.ndarray, last: np.ndarray, steps: int, device: torch.device
) -> np.ndarray:
    """Decode `steps` evenly spaced points on the line between the codes of two uint8 images:
    float32 steps x 28 x 28, from the first image's reconstruction to the last one's."""
    model.eval()
    pair = to_model_input(torch.from_numpy(np.stack([first, last])).to(device))
    start, end = model.encode(pair).float()
    weights = torch.linspace(0, 1, steps, device=device).view(-1, *[1] * start.dim())
    codes = (1 - weights) * start + weights * end
    return torch.sigmoid(model.decoder(codes)).squeeze(1).float().cpu().numpy()


def project_2d(codes: torch.Tensor) -> np.ndarray:
    """The codes on their first two principal axes: N x 2 (a linear, deterministic map)."""
    return PCA.fit(codes).encode(codes, 2).float().numpy()


@dataclass(frozen=True)
class AnomalyReport:
    roc_auc: float
    threshold: float
    false_alarm_rate: float  # on the in-distribution test set, at the threshold
    detection_rate: float  # share of out-of-distribution images above the threshold

    def as_dict(self) -> dict[str, float]:
        return {
            "roc_auc": self.roc_auc,
            "threshold": self.threshold,
            "test_false_alarm_rate": self.false_alarm_rate,
            "detection_rate": self.detection_rate,
        }


def reconstruction_errors(
    model: Autoencoder, images: np.ndarray, batch_size: int, device: torch.device
) -> np.ndarray:
    """Per-image MSE of the model's reconstruction of clean uint8 images: the anomaly score."""
    output = torch.from_numpy(reconstruct(model, images, batch_size, device))
    return per_image_mse(output, to_unit(images)).numpy()


def detect_anomalies(
    val_scores: np.ndarray, test_scores: np.ndarray, ood_scores: np.ndarray, false_alarms: float
) -> AnomalyReport:
    """Scores are reconstruction errors (higher: more anomalous). The threshold is the
    validation scores' (1 - false_alarms) quantile, chosen without seeing the test sets."""
    # Imported here: scikit-learn takes seconds to import and only the anomaly stage needs it.
    from sklearn.metrics import roc_auc_score

    threshold = float(np.quantile(val_scores, 1 - false_alarms))
    labels = np.concatenate([np.zeros(len(test_scores)), np.ones(len(ood_scores))])
    return AnomalyReport(
        roc_auc=float(roc_auc_score(labels, np.concatenate([test_scores, ood_scores]))),
        threshold=threshold,
        false_alarm_rate=float(np.mean(test_scores > threshold)),
        detection_rate=float(np.mean(ood_scores > threshold)),
    )
