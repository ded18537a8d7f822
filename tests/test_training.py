import contextlib
import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mnist_ae.model.devices import resolve_precision
from mnist_ae.model.loop import Pairs, Trainer, TrainSettings, fit
from mnist_ae.model.losses import TrainingDiverged, reconstruction_loss
from mnist_ae.model.networks import ModelConfig, build_model
from mnist_ae.model.progress import Progress

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


def train_once(epochs: int = 3, arch: str = "conv", **fast_path):
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch, 8))
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
    # The article's network, as gpu_check.py compiles it: 14 kernels to build with a C++
    # compiler where conv has 22 (a fresh machine has none cached: 24 s of CPU against 43 s).
    _, eager, *_ = train_once(epochs=1, arch="seed")
    _, compiled, *_ = train_once(epochs=1, arch="seed", compile=True)
    assert compiled.best_val_loss == pytest.approx(eager.best_val_loss, rel=1e-2)


def test_pairs_share_one_copy_for_clean_to_clean():
    clean = np.zeros((4, 28, 28), np.uint8)
    pairs = Pairs.to_device(clean, clean, CPU)
    assert pairs.inputs is pairs.targets
    noisy = Pairs.to_device(clean.copy(), clean, CPU)
    assert noisy.inputs is not noisy.targets
    with pytest.raises(ValueError, match="differ in shape"):
        Pairs(torch.zeros(3, 28, 28), torch.zeros(2, 28, 28))


def test_precision_auto_is_bf16_on_cuda_and_fp32_on_every_cpu():
    assert resolve_precision(torch.device("cuda"), "auto") == "bf16"
    assert resolve_precision(torch.device("mps"), "auto") == "fp32"
    assert resolve_precision(CPU, "auto") == "fp32"  # whatever this CPU has
    assert resolve_precision(CPU, "bf16") == "bf16"  # an explicit choice stays one


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


def test_fresh_noise_feeds_new_noisy_inputs_against_clean_targets():
    inputs = []
    torch.manual_seed(0)
    model = build_model(ModelConfig("conv", 8))
    logits = model.logits
    model.logits = lambda x: inputs.append(x.detach().clone()) or logits(x)
    train, val = blobs(256, 0), blobs(64, 1)
    settings = TrainSettings("bce", 3e-3, 2, 64, seed=0, schedule="onecycle", fresh_noise_std=0.3)
    result = fit(model, Pairs(train, train), Pairs(val, val), settings, show_progress=False)
    assert result.history[-1].val_loss < result.history[0].val_loss
    # The first batch: the first draw of the seeded generator orders the images.
    order = torch.randperm(256, generator=torch.Generator().manual_seed(0))
    clean = train[order[:64]].float() / 255
    noisy = inputs[0].squeeze(1)
    residual = noisy - clean
    assert float(residual.abs().mean()) > 0.1  # noisy inputs, not the clean targets
    unclipped = residual[(noisy > 0) & (noisy < 1)]
    assert float(unclipped.pow(2).mean().sqrt()) == pytest.approx(0.3, abs=0.02)  # sigma 0.3
    second_epoch_first_batch = inputs[4 + 1]  # 4 training batches, 1 validation batch
    assert not torch.equal(inputs[0], second_epoch_first_batch)  # new noise every time


def test_a_resumed_training_ends_bit_identical_to_an_uninterrupted_one():
    settings = TrainSettings(
        "psnr", 0.01, 4, 64, seed=3, channels_last=True, schedule="onecycle", fresh_noise_std=0.4
    )
    train, val = blobs(320, 0), blobs(64, 1)

    def run(stop_after=None, resume=None):
        torch.manual_seed(0)
        model = build_model(ModelConfig("conv", 8))
        saved = {}

        def on_epoch(epoch, progress):
            buffer = io.BytesIO()
            torch.save(progress.as_dict(), buffer)
            saved[epoch.epoch] = buffer.getvalue()
            if epoch.epoch == stop_after:
                raise KeyboardInterrupt

        with contextlib.suppress(KeyboardInterrupt):
            fit(
                model,
                Pairs(train, train),
                Pairs(val, val),
                settings,
                on_epoch,
                show_progress=False,
                resume=resume,
            )
        return model, saved

    full, _ = run()
    _, saved = run(stop_after=2)
    progress = Progress.from_dict(torch.load(io.BytesIO(saved[2]), weights_only=True))
    resumed, _ = run(resume=progress)
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_a_diverging_loss_stops_at_that_epoch_suggesting_a_lower_rate():
    torch.manual_seed(0)
    model = build_model(ModelConfig("conv", 8))
    train, val = blobs(128, 0), blobs(64, 1)
    settings = TrainSettings("mse", float("inf"), 3, 64, seed=0)
    with pytest.raises(TrainingDiverged, match=r"loss is nan at epoch 1 of 3: .*lower train.lr"):
        fit(model, Pairs(train, train), Pairs(val, val), settings, show_progress=False)
