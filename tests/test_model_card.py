"""The model card's promote part: added once, replaced when promote runs again, and what it
says of the anomaly figures (the end-to-end test reads a real version's card)."""

from mnist_ae.tracking import model_card

EVALUATION = {
    "code_size": 32,
    "reconstruction": {"mse": 0.004, "psnr": 24.6473, "ssim": 0.9625, "bce": 0.07},
    "denoising": {"mse": 0.0067, "psnr": 22.2147, "ssim": 0.9362, "bce": 0.08},
}
PCA = {"reconstruction_mse": 0.0152, "reconstruction_psnr": 18.5574, "denoising_mse": 0.0273,
       "denoising_psnr": 15.7299}  # fmt: skip
ANOMALY = {"ood_available": True, "roc_auc": 0.99984, "not_a_digit": {"fashion_noisy": 0.9839}}


def section(decision: str, anomaly=ANOMALY) -> str:
    return model_card.promote_section(EVALUATION, PCA, anomaly, decision, "04d2aac24eb1388f")


def test_promote_s_part_follows_the_registration_s_and_a_rerun_replaces_it():
    card = "# ae\n\n## Signature\n\nsigned\n"
    once = model_card.completed(card, section("not promoted: champion version 1 is better"))
    assert once.startswith(card + "\n" + model_card.PROMOTE_MARK)
    assert "| denoising psnr | 22.2147 | 15.7299 |" in once
    assert "| Fashion-MNIST test images, noisy | 98.39% |" in once
    twice = model_card.completed(once, section("version 2 is @champion"))
    assert twice.count(model_card.PROMOTE_MARK) == 1 and twice.startswith(card)
    assert twice.endswith("## Champion decision\n\nversion 2 is @champion\n")
    assert "champion version 1 is better" not in twice


def test_without_fashion_mnist_the_card_says_so():
    missing = {"ood_available": False, "not_a_digit": {"mnist_noisy": 0.0086}}
    text = section("kept", missing)
    assert "Fashion-MNIST was unavailable" in text and "| MNIST test digits, noisy" in text
