import numpy as np
import pytest
import torch

from mnist_ae.analysis.evaluation import reconstruct
from mnist_ae.model.model_file import load_model, save_model
from mnist_ae.model.networks import ModelConfig, build_model


@pytest.mark.parametrize(
    ("arch", "latent", "code_shape"),
    [
        ("seed", 32, (32, 7, 7)),
        ("conv", 32, (32,)),
        ("conv", 7, (7,)),
    ],
)
def test_shapes_and_output_range(arch, latent, code_shape):
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch, latent))
    x = torch.rand(3, 1, 28, 28)
    assert model.encode(x).shape == (3, *code_shape)
    assert model.code_size == int(np.prod(code_shape))
    with torch.no_grad():
        y = model(x)
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1
    assert torch.allclose(y, torch.sigmoid(model.logits(x)))


def test_seed_network_is_the_article_layer_for_layer():
    model = build_model(ModelConfig("seed", 32))
    convs = [
        m for m in model.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d)
    ]
    assert [(type(m).__name__, m.out_channels, m.kernel_size, m.stride) for m in convs] == [
        ("Conv2d", 32, (3, 3), (1, 1)),
        ("Conv2d", 32, (3, 3), (1, 1)),
        ("ConvTranspose2d", 32, (3, 3), (2, 2)),
        ("ConvTranspose2d", 32, (3, 3), (2, 2)),
        ("Conv2d", 1, (3, 3), (1, 1)),
    ]
    assert model.code_size == 1568  # twice the 784 input pixels


def test_model_file_round_trip(tmp_path):
    model = build_model(ModelConfig("conv", 16))
    digest = save_model(tmp_path / "model.pt", model, ModelConfig("conv", 16))
    loaded = load_model(tmp_path / "model.pt")
    assert digest == torch.load(tmp_path / "model.pt", weights_only=True)["sha256"]
    x = torch.rand(2, 1, 28, 28)
    assert loaded.encoder[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not loaded.training
    # Same weights; the channels_last kernels may round differently in the last bits.
    torch.testing.assert_close(loaded(x), model.eval()(x), rtol=0, atol=1e-5)
    loaded_state = loaded.state_dict()
    for name, value in model.state_dict().items():
        assert torch.equal(loaded_state[name], value), name


def test_batched_reconstruction_matches_one_batch():
    model = build_model(ModelConfig("conv", 8))
    images = np.random.default_rng(0).integers(0, 256, (10, 28, 28), dtype=np.uint8)
    whole = reconstruct(model, images, 10, torch.device("cpu"))
    pieces = reconstruct(model, images, 3, torch.device("cpu"))
    assert whole.shape == (10, 28, 28) and whole.dtype == np.float32
    np.testing.assert_allclose(whole, pieces, atol=1e-6)
