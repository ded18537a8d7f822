"""Pixels: stored as uint8 (0-255), computed on as floats in [0, 1]. The one place that converts
between the two and scores an image against another (MSE, PSNR with peak 1).

Imports only torch (numpy arrays are taken as they come): the GPU benchmark runs with a plain
torch install.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    import numpy as np

_PSNR_EPSILON = 1e-8  # keeps a perfect image finite (80 dB) and the PSNR loss's gradient finite


def to_unit(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 images (a tensor on any device, or a numpy array) -> float32 tensor in [0, 1]."""
    if not isinstance(images, torch.Tensor):
        images = torch.from_numpy(images)
    return images.float().div_(255.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Floats in [0, 1] -> uint8, clipped and rounded to the nearest level."""
    return images.clamp(0, 1).mul(255).round_().to(torch.uint8)


def to_model_input(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 N x 28 x 28 -> float N x 1 x 28 x 28 in [0, 1], what the networks take."""
    return to_unit(images).unsqueeze(1)


def per_image_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each image (N x H x W or N x 1 x H x W) -> N."""
    return (pred.float() - target.float()).pow(2).flatten(1).mean(dim=1)


def psnr(mse: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of pixels in [0, 1] (peak 1), per element of `mse`."""
    return -10.0 * torch.log10(mse + _PSNR_EPSILON)
