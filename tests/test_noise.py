import numpy as np

from mnist_ae.data.noise import add_gaussian_noise, split_rng


def test_noise_is_clipped_8_bit_and_has_the_requested_spread():
    gray = np.full((200, 28, 28), 128, np.uint8)  # mid-gray: clipping is negligible at std 0.1
    noisy = add_gaussian_noise(gray, 0.1, np.random.default_rng(0))
    assert noisy.dtype == np.uint8 and noisy.shape == gray.shape
    deviation = noisy / 255.0 - 128 / 255.0
    assert abs(deviation.std() - 0.1) < 0.002 and abs(deviation.mean()) < 0.002


def test_large_noise_saturates_at_both_ends():
    gray = np.full((10, 28, 28), 128, np.uint8)
    noisy = add_gaussian_noise(gray, 2.0, np.random.default_rng(0))
    assert noisy.min() == 0 and noisy.max() == 255


def test_zero_noise_is_identity():
    images = np.random.default_rng(1).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    assert np.array_equal(add_gaussian_noise(images, 0.0, np.random.default_rng(0)), images)


def test_noise_is_seeded_per_split():
    images = np.zeros((4, 28, 28), np.uint8)

    def noisy(seed, split):
        return add_gaussian_noise(images, 0.4, split_rng(seed, split))

    assert np.array_equal(noisy(42, "train"), noisy(42, "train"))
    assert not np.array_equal(noisy(42, "train"), noisy(42, "test"))
    assert not np.array_equal(noisy(42, "train"), noisy(43, "train"))
