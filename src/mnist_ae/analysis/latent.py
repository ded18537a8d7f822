"""What the code space holds: interpolation between two digits and a 2-D map of the test codes."""

from __future__ import annotations

import numpy as np
import torch

from mnist_ae.analysis.evaluation import batched
from mnist_ae.analysis.pca import PCA
from mnist_ae.data.pixels import to_model_input
from mnist_ae.model.networks import Autoencoder


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
