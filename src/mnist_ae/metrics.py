"""Image-quality metrics on pixels in [0, 1]: MSE, PSNR (mean of per-image PSNR), SSIM, BCE."""

from __future__ import annotations

import torch

# The two scored tasks: clean input (reconstruction) and noisy input (denoising); the target is
# always the clean image.
TASKS = ("reconstruction", "denoising")

# A perfect reconstruction has infinite PSNR; capping MSE at 1e-10 caps PSNR at 100 dB.
_MIN_MSE = 1e-10
_BCE_EPS = 1e-7


def per_image_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each image (N x H x W or N x 1 x H x W) -> N."""
    return (pred.float() - target.float()).pow(2).flatten(1).mean(dim=1)


def psnr_from_mse(mse: torch.Tensor) -> torch.Tensor:
    """PSNR in dB for pixels in [0, 1] (peak 1), per element of `mse`."""
    return -10.0 * torch.log10(mse.clamp_min(_MIN_MSE))


def mse_psnr(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Mean per-pixel MSE and mean per-image PSNR."""
    mse = per_image_mse(pred, target)
    return {"mse": float(mse.mean()), "psnr": float(psnr_from_mse(mse).mean())}


def mean_bce(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Binary cross-entropy of predicted pixels against target pixels, per pixel."""
    pred = pred.float().clamp(_BCE_EPS, 1 - _BCE_EPS)
    target = target.float()
    return float(-(target * pred.log() + (1 - target) * (1 - pred).log()).mean())


def mean_ssim(pred: torch.Tensor, target: torch.Tensor, batch_size: int = 2000) -> float:
    """Mean SSIM (torchmetrics: 11x11 Gaussian window, sigma 1.5), computed in batches."""
    # Imported here: torchmetrics takes seconds to import and only the evaluate stage needs SSIM.
    from torchmetrics.functional.image import structural_similarity_index_measure

    pred, target = pred.float().reshape(-1, 1, 28, 28), target.float().reshape(-1, 1, 28, 28)
    total = 0.0
    for start in range(0, len(pred), batch_size):
        chunk = slice(start, start + batch_size)
        value = structural_similarity_index_measure(pred[chunk], target[chunk], data_range=1.0)
        total += float(value) * len(pred[chunk])
    return total / len(pred)


def image_metrics(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """MSE (per pixel), PSNR (mean over images of per-image PSNR), SSIM and BCE."""
    mse = per_image_mse(pred, target)
    return {
        "mse": float(mse.mean()),
        "psnr": float(psnr_from_mse(mse).mean()),
        "ssim": mean_ssim(pred, target),
        "bce": mean_bce(pred, target),
    }


def mse_per_digit(
    pred: torch.Tensor, target: torch.Tensor, labels: torch.Tensor
) -> dict[int, float]:
    """Mean per-pixel MSE of the images of each digit present in `labels`."""
    mse = per_image_mse(pred, target)
    return {int(d): float(mse[labels == d].mean()) for d in torch.unique(labels)}
