import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mnist_ae.devices import resolve_precision
from mnist_ae.models import ModelConfig, build_model
from mnist_ae.training import Pairs, Trainer, TrainSettings, fit, reconstruction_loss

CPU = torch.device("cpu")


def test_losses_on_known_values():
    logits = torch.tensor([[0.0, 2.0], [-1.0, 3.0]])
    target = torch.tensor([[0.5, 1.0], [0.0, 0.25]])
    probs = torch.sigmoid(logits)
    expected_bce = F.binary_cross_entropy(probs, target)
    assert torch.isclose(reconstruction_loss(logits, target, "bce"), expected_bce)
    assert torch.isclose(reconstruction_loss(logits, target, "mse"), ((probs - target) ** 2).mean())
    assert torch.isclose(reconstruction_loss(logits, target, "l1"), (probs - target).abs().mean())
    with pytest.raises(ValueError, match="hinge"):
        reconstruction_loss(logits, target, "hinge")


def blobs(count: int, seed: int) -> torch.Tensor:
    """Learnable images: a bright square at a random place on black."""
    g = torch.Generator().manual_seed(seed)
    images = torch.zeros(count, 28, 28, dtype=torch.uint8)
    for i, (r, c) in enumerate(torch.randint(0, 20, (count, 2), generator=g).tolist()):
        images[i, r : r + 8, c : c + 8] = 255
    return images


def train_once(epochs: int = 3, **fast_path):
    torch.manual_seed(0)
    model = build_model(ModelConfig("conv", 8))
    train, val = blobs(500, 0), blobs(128, 1)
    settings = TrainSettings("bce", 3e-3, epochs, 64, seed=0, **fast_path)
    result = fit(model, Pairs(train, train), Pairs(val, val), settings, show_progress=False)
    return model, result, Pairs(val, val), settings


def test_training_lowers_the_loss_and_keeps_the_best_weights():
    model, result, val, settings = train_once()
    losses = [e.val_loss for e in result.history]
    assert [e.epoch for e in result.history] == [1, 2, 3]
    assert losses[-1] < losses[0]
    assert result.best_val_loss == min(losses)
    assert result.best_epoch == losses.index(min(losses)) + 1
    best = Trainer(model, settings, CPU).validation_loss(val)
    assert best == pytest.approx(result.best_val_loss, rel=1e-5)
    assert result.images_seen == 3 * 448  # 7 full batches of 64 per epoch; the rest waits


def test_training_is_reproducible():
    first, *_ = train_once(epochs=1)
    second, *_ = train_once(epochs=1)
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_bf16_autocast_and_channels_last_train_as_well_as_fp32():
    _, fp32, *_ = train_once(epochs=2)
    _, fast, *_ = train_once(epochs=2, precision="bf16", channels_last=True)
    assert fast.best_val_loss == pytest.approx(fp32.best_val_loss, rel=0.05)


def test_compiled_training_matches_eager():
    _, eager, *_ = train_once(epochs=1)
    _, compiled, *_ = train_once(epochs=1, compile=True)
    assert compiled.best_val_loss == pytest.approx(eager.best_val_loss, rel=1e-2)


def test_pairs_share_one_copy_for_clean_to_clean():
    clean = np.zeros((4, 28, 28), np.uint8)
    pairs = Pairs.to_device(clean, clean, CPU)
    assert pairs.inputs is pairs.targets
    noisy = Pairs.to_device(clean.copy(), clean, CPU)
    assert noisy.inputs is not noisy.targets
    with pytest.raises(ValueError, match="differ in shape"):
        Pairs(torch.zeros(3, 28, 28), torch.zeros(2, 28, 28))


def test_precision_choice():
    assert resolve_precision(torch.device("cuda"), "auto") == "bf16"
    assert resolve_precision(torch.device("mps"), "auto") == "fp32"
    assert resolve_precision(CPU, "fp32") == "fp32"
    assert resolve_precision(CPU, "auto") in ("fp32", "bf16")


def test_psnr_loss_is_minus_the_mean_per_image_psnr():
    target = torch.zeros(2, 1, 2, 2)
    probs = torch.stack([torch.full((1, 2, 2), 0.1), torch.full((1, 2, 2), 0.01)])  # MSE 1e-2, 1e-4
    logits = torch.logit(probs)
    loss = reconstruction_loss(logits, target, "psnr")
    assert float(loss) == pytest.approx(-(20 + 40) / 2, abs=1e-3)


def test_fresh_noise_is_8_bit_seeded_and_new_every_draw():
    settings = TrainSettings("bce", 1e-3, 1, 4, seed=0, fresh_noise_std=0.1)
    trainer = Trainer(build_model(ModelConfig("conv", 4)), settings, CPU)
    clean = torch.full((64, 28, 28), 128, dtype=torch.uint8)
    first = trainer._noisy(clean, torch.Generator().manual_seed(1))
    again = trainer._noisy(clean, torch.Generator().manual_seed(1))
    generator = torch.Generator().manual_seed(1)
    trainer._noisy(clean, generator)
    second = trainer._noisy(clean, generator)
    assert first.dtype == torch.uint8 and torch.equal(first, again)
    assert not torch.equal(first, second)
    spread = (first.float() - 128).std() / 255
    assert float(spread) == pytest.approx(0.1, abs=0.005)  # at mid-grey, 0.1 hardly ever clips


def test_fresh_noise_training_runs_and_learns():
    _, result, *_ = train_once(epochs=2, fresh_noise_std=0.3, schedule="onecycle")
    assert result.history[-1].val_loss < result.history[0].val_loss
