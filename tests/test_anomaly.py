import numpy as np
import pytest
import torch

from mnist_ae.analysis.anomaly import detect_anomalies, reconstruction_errors
from mnist_ae.analysis.evaluation import reconstruct
from mnist_ae.model.networks import ModelConfig, build_model

CPU = torch.device("cpu")


def test_reconstruction_errors_are_per_image_mse():
    torch.manual_seed(0)
    model = build_model(ModelConfig("conv", 4))
    images = np.random.default_rng(2).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    errors = reconstruction_errors(model, images, 2, CPU)
    expected = ((reconstruct(model, images, 5, CPU) - images / 255.0) ** 2).mean(axis=(1, 2))
    np.testing.assert_allclose(errors, expected, rtol=1e-5)


def test_perfectly_separated_scores():
    rng = np.random.default_rng(0)
    val, test = rng.uniform(0, 1, 10_000), rng.uniform(0, 1, 10_000)
    report = detect_anomalies(val, test, rng.uniform(2, 3, 1000), false_alarms=0.01)
    assert report.roc_auc == 1.0 and report.detection_rate == 1.0
    assert report.threshold == pytest.approx(0.99, abs=0.01)
    assert report.false_alarm_rate == pytest.approx(0.01, abs=0.005)


def test_overlapping_scores_give_the_pairwise_auc():
    # Of the 9 (test, ood) pairs, ood scores higher in 6 and ties in 2 (counted half): 7/9.
    report = detect_anomalies(
        np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0]), np.array([2.0, 3.0, 4.0]), 0.25
    )
    assert report.roc_auc == pytest.approx(7 / 9)
    assert report.threshold == pytest.approx(2.25)  # the validation scores' 75th percentile
    assert report.detection_rate == pytest.approx(2 / 3)
    assert set(report.as_dict()) == {
        "roc_auc",
        "threshold",
        "test_false_alarm_rate",
        "detection_rate",
    }
