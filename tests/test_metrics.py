import math

import pytest
import torch

from mnist_ae.analysis.metrics import image_metrics, mean_bce, mse_per_digit, mse_psnr


def test_identical_images():
    x = torch.rand(4, 28, 28)
    metrics = image_metrics(x, x)
    assert metrics["mse"] == 0 and metrics["psnr"] == pytest.approx(80)  # capped: 1e-8 added
    assert metrics["ssim"] == pytest.approx(1.0, abs=1e-5)


def test_psnr_is_the_mean_of_per_image_psnr():
    target = torch.zeros(2, 28, 28)
    pred = torch.stack([torch.full((28, 28), 0.1), torch.full((28, 28), 0.01)])  # MSE 1e-2, 1e-4
    scores = mse_psnr(pred, target)
    assert scores["mse"] == pytest.approx((1e-2 + 1e-4) / 2)
    assert scores["psnr"] == pytest.approx((20 + 40) / 2, abs=1e-3)  # not PSNR of the mean MSE


def test_bce_on_known_values():
    pred = torch.tensor([[0.5, 0.9]])
    target = torch.tensor([[1.0, 0.0]])
    assert mean_bce(pred, target) == pytest.approx((-math.log(0.5) - math.log(0.1)) / 2, rel=1e-5)


def test_ssim_drops_for_a_distorted_image():
    x = torch.rand(8, 28, 28)
    assert image_metrics(torch.zeros_like(x) + x.mean(), x)["ssim"] < 0.1


def test_mse_per_digit():
    target = torch.zeros(3, 28, 28)
    pred = torch.stack([torch.full((28, 28), v) for v in (0.1, 0.3, 0.2)])
    per_digit = mse_per_digit(pred, target, torch.tensor([7, 7, 2]))
    assert per_digit == pytest.approx({7: (0.01 + 0.09) / 2, 2: 0.04})


def test_ssim_equals_torchmetrics_per_image():
    """Our separable SSIM against the reference implementation (a test-only dependency)."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    from mnist_ae.analysis.metrics import mean_ssim, per_image_ssim

    generator = torch.Generator().manual_seed(0)
    target = torch.rand(300, 1, 28, 28, generator=generator)
    pred = (target + 0.3 * torch.randn(300, 1, 28, 28, generator=generator)).clamp(0, 1)
    reference = structural_similarity_index_measure(pred, target, data_range=1.0, reduction="none")
    assert torch.allclose(per_image_ssim(pred, target), reference, atol=1e-6)
    assert mean_ssim(pred[:, 0], target[:, 0], batch_size=128) == pytest.approx(
        float(reference.mean()), abs=1e-6
    )
