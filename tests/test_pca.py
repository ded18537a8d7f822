import numpy as np
import pytest
import torch

from mnist_ae.analysis.comparison import compare
from mnist_ae.analysis.pca import PCA, pca_scores


def low_rank_data(rank: int = 2, dim: int = 6, count: int = 200) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    basis = torch.randn(rank, dim, generator=g, dtype=torch.float64)
    return torch.randn(count, rank, generator=g, dtype=torch.float64) @ basis + 3.0


def test_rank_two_data_is_recovered_with_two_components():
    data = low_rank_data()
    pca = PCA.fit(data)
    codes = pca.encode(data, 2)
    assert torch.allclose(pca.decode(codes, tuple(data.shape)), data, atol=1e-9)
    assert pca.variances[2:].abs().max() < 1e-9
    assert torch.all(pca.variances[:-1] >= pca.variances[1:])


def test_components_are_orthonormal_and_match_numpy_svd():
    data = torch.rand(100, 8, dtype=torch.float64)
    pca = PCA.fit(data)
    eye = pca.components.T @ pca.components
    assert torch.allclose(eye, torch.eye(8, dtype=torch.float64), atol=1e-10)
    centered = (data - data.mean(0)).numpy()
    singular = np.linalg.svd(centered, compute_uv=False)
    np.testing.assert_allclose(pca.variances.numpy(), singular**2 / 99, rtol=1e-8)


def test_reconstruction_is_clipped_to_valid_pixels_and_lossless_at_full_size():
    data = torch.rand(50, 16)
    pca = PCA.fit(data)
    partial = pca.reconstruct(data, 3)
    assert partial.min() >= 0 and partial.max() <= 1 and partial.dtype == torch.float32
    assert torch.allclose(pca.reconstruct(data, 16), data, atol=1e-6)
    assert torch.allclose(pca.reconstruct(data, 1000), data, atol=1e-6)  # capped at 16


def test_pca_scores_improve_with_more_components():
    clean = torch.rand(60, 28, 28)
    noisy = (clean + 0.3 * torch.randn(60, 28, 28)).clamp(0, 1)
    rows = pca_scores(PCA.fit(clean), [1, 10, 784], clean, noisy)
    assert [r["code_size"] for r in rows] == [1, 10, 784]
    assert (
        rows[0]["reconstruction_mse"]
        > rows[1]["reconstruction_mse"]
        > rows[2]["reconstruction_mse"]
    )
    assert rows[2]["reconstruction_mse"] < 1e-10  # every component kept: lossless
    # Keeping every component reproduces the noise: the noisy input's own error.
    assert abs(rows[2]["denoising_mse"] - float(((noisy - clean) ** 2).mean())) < 1e-6


def test_comparison_at_equal_code_size():
    rows = [
        {
            "code_size": 32,
            "reconstruction_mse": 0.02,
            "reconstruction_psnr": 17.0,
            "denoising_mse": 0.03,
            "denoising_psnr": 15.5,
        },
        {
            "code_size": 1568,
            "reconstruction_mse": 0.0,
            "reconstruction_psnr": 100.0,
            "denoising_mse": 0.08,
            "denoising_psnr": 11.0,
        },
    ]
    ae = {
        "code_size": 32,
        "reconstruction_mse": 0.005,
        "reconstruction_psnr": 23.0,
        "denoising_mse": 0.01,
        "denoising_psnr": 20.5,
    }
    result = compare(rows, ae)
    assert result["reconstruction_mse_ratio"] == pytest.approx(0.25)
    assert result["denoising_mse_ratio"] == pytest.approx(1 / 3)
    assert result["denoising_psnr_gain_db"] == pytest.approx(5.0)
    assert result["pca_lossless_at_code_size"] is False


def test_comparison_of_the_article_network_is_on_denoising_only():
    rows = [
        {
            "code_size": 1568,
            "reconstruction_mse": 1e-30,
            "reconstruction_psnr": 100.0,
            "denoising_mse": 0.08,
            "denoising_psnr": 11.0,
        }
    ]
    ae = {
        "code_size": 1568,
        "reconstruction_mse": 0.001,
        "reconstruction_psnr": 30.0,
        "denoising_mse": 0.01,
        "denoising_psnr": 20.0,
    }
    result = compare(rows, ae)
    assert result["pca_lossless_at_code_size"] is True
    assert "reconstruction_mse_ratio" not in result  # PCA with all 784 components is lossless
    assert result["denoising_mse_ratio"] == pytest.approx(0.125)
