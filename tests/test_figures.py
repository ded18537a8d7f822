import numpy as np
import torch
from torchvision.utils import make_grid

from mnist_ae.analysis.figures import image_strip


def test_image_strip_lays_out_images_as_torchvision_make_grid_does():
    images = np.random.default_rng(0).random((10, 28, 28)).astype(np.float32)
    expected = make_grid(torch.from_numpy(images)[:, None], nrow=10, padding=2, pad_value=1.0)
    assert np.array_equal(image_strip(images), expected[0].numpy())
