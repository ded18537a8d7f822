import pytest
import torch
import torch.nn.functional as F

from mnist_ae.models import ModelConfig, build_model
from mnist_ae.training import Pairs, TrainSettings, evaluate_loss, fit, reconstruction_loss


def test_losses_on_known_values():
    logits = torch.tensor([[0.0, 2.0], [-1.0, 3.0]])
    target = torch.tensor([[0.5, 1.0], [0.0, 0.25]])
    probs = torch.sigmoid(logits)
    assert torch.isclose(
        reconstruction_loss(logits, target, "bce"), F.binary_cross_entropy(probs, target)
    )
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


def train_once(epochs: int = 3):
    torch.manual_seed(0)
    model = build_model(ModelConfig("conv", 8))
    train, val = blobs(512, 0), blobs(128, 1)
    settings = TrainSettings("bce", 3e-3, epochs, 64, seed=0)
    result = fit(model, Pairs(train, train), Pairs(val, val), settings, show_progress=False)
    return model, result, Pairs(val, val)


def test_training_lowers_the_loss_and_keeps_the_best_weights():
    model, result, val = train_once()
    losses = [e.val_loss for e in result.history]
    assert [e.epoch for e in result.history] == [1, 2, 3]
    assert losses[-1] < losses[0]
    assert result.best_val_loss == min(losses)
    assert result.best_epoch == losses.index(min(losses)) + 1
    assert evaluate_loss(model, val, "bce", 64) == pytest.approx(result.best_val_loss, rel=1e-5)
    assert result.images_seen == 3 * 512


def test_training_is_reproducible():
    first, _, _ = train_once(epochs=1)
    second, _, _ = train_once(epochs=1)
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_pairs_must_match():
    with pytest.raises(ValueError, match="inputs"):
        Pairs(torch.zeros(3, 28, 28), torch.zeros(2, 28, 28))
