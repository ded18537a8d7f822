import numpy as np
import pytest
import torch

from mnist_ae.analysis.evaluation import reconstruct
from mnist_ae.analysis.latent import encode, interpolate, project_2d
from mnist_ae.data.pixels import to_model_input
from mnist_ae.model.networks import ModelConfig, build_model

CPU = torch.device("cpu")


@pytest.mark.parametrize("arch", ["conv", "seed"])
def test_interpolation_endpoints_are_the_two_reconstructions(arch):
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch, 8)).eval()
    images = np.random.default_rng(0).integers(0, 256, (2, 28, 28), dtype=np.uint8)
    strip = interpolate(model, images[0], images[1], 7, CPU)
    ends = reconstruct(model, images, 2, CPU)
    assert strip.shape == (7, 28, 28)
    np.testing.assert_allclose(strip[0], ends[0], atol=1e-5)
    np.testing.assert_allclose(strip[-1], ends[1], atol=1e-5)
    # The middle of 7 steps decodes the mean of the two codes (an untrained network's outputs
    # differ little, so compare with that decoding rather than only with the ends).
    with torch.no_grad():
        codes = model.encode(to_model_input(torch.from_numpy(images)))
        middle = torch.sigmoid(model.decoder(codes.mean(dim=0, keepdim=True)))[0, 0].numpy()
    np.testing.assert_allclose(strip[3], middle, atol=1e-5)
    assert not np.array_equal(strip[3], strip[0]) and not np.array_equal(strip[3], strip[-1])


def test_codes_and_their_2d_map():
    torch.manual_seed(0)
    model = build_model(ModelConfig("conv", 8))
    images = np.random.default_rng(1).integers(0, 256, (30, 28, 28), dtype=np.uint8)
    codes = encode(model, images, 7, CPU)
    assert codes.shape == (30, 8)
    points = project_2d(codes)
    assert points.shape == (30, 2)
    assert np.var(points[:, 0]) >= np.var(points[:, 1])  # first axis holds the most variance
