"""The model card: a registered version's description, in Markdown (the MLflow UI renders it),
for people; tags stay for machines. The training writes what it knows when the version is
registered (data, params, device, calibration, how to load it), the registrar adds the version's
signature, and `promote` completes it (test scores against PCA, anomaly figures, the champion
decision), replacing what an earlier promote of the same version wrote."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PROMOTE_MARK = "*Completed by the promote stage (a rerun replaces what follows):*"
VERSION_SLOT = "<this version>"  # the registrar writes the version's number in its place
# the anomaly stage's sets of pictures, as the card names them
PICTURES = {
    "mnist_clean": "MNIST test digits, clean",
    "mnist_noisy": "MNIST test digits, noisy (add-noise's)",
    "fashion_clean": "Fashion-MNIST test images, clean",
    "fashion_noisy": "Fashion-MNIST test images, noisy",
    "letters_clean": "printed letters (Pillow's font, 3 stroke widths)",
    "letters_noisy": "printed letters, noisy",
    "uniform_noise": "uniform noise",
    "noise_alone": "the pipeline's noise on a blank picture",
}


def _table(rows: Mapping[str, Any], header: tuple[str, str]) -> list[str]:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    return lines + [f"| {key} | {value} |" for key, value in rows.items()]


def registration_card(
    name: str,
    run_id: str,
    data: Mapping[str, str],
    params: Mapping[str, Any],
    training: Mapping[str, Any],
    calibration: Mapping[str, Any],
) -> str:
    """`data`: each file the training read -> its SHA-256; `params`: what defines the training;
    `training`: device, precision, seconds and the best epoch; `calibration`: the not-a-digit
    calibration (analysis.not_a_digit.Calibration.as_dict())."""
    c = calibration
    levels = ", ".join(
        f"noise {level:g}: {error:.4f}"
        for level, error in zip(c["levels"], c["reference_error"], strict=True)
    )
    lines = [
        f"# {name}: a denoising autoencoder for 28 x 28 MNIST digits",
        "",
        f"Trained by MLflow run `{run_id}` (`dvc repro`, stage train).",
        "",
        "## Data",
        "",
        *_table({f"`{path}`": f"`{digest}`" for path, digest in data.items()}, ("file", "SHA-256")),
        "",
        "## Params",
        "",
        *_table({f"`{key}`": f"`{value}`" for key, value in params.items()}, ("param", "value")),
        "",
        "## Training",
        "",
        *_table(training, ("", "")),
        "",
        "## Not-a-digit verdict (calibrated on the validation digits)",
        "",
        "Every answer of `serve` and `denoise` carries a score: the reconstruction error over "
        f"that of the worst {c['false_alarm_rate']:.0%} of validation digits as rough as the "
        "input (docs/metrics.md).",
        f"Above **{c['threshold']:.4f}** the picture is judged not to be a digit.",
        "",
        *_table(
            {
                "reference error per noise level": levels,
                "validation images": c["validation_images"],
                f"noisy validation digits flagged (noise {c['noise_std']:g})": (
                    f"{c['flagged_noisy']:.2%}"
                ),
                "clean validation digits flagged": f"{c['flagged_clean']:.2%}",
            },
            ("", ""),
        ),
        "",
        "## Load and serve it",
        "",
        "```bash",
        f"python -m mnist_ae.serve --version {VERSION_SLOT} --port 5001",
        "python -m mnist_ae.denoise pictures/ --out denoised/   # the champion",
        "```",
        "",
        "```python",
        "from mnist_ae.tracking import registry",
        f'version, model = registry.load_verified("{name}", "{VERSION_SLOT}", into)',
        "```",
        "",
        "Both check the signature below and the files' digest before loading anything.",
    ]
    return "\n".join(lines) + "\n"


def signature_section(digest: str, signature: str, key_setting: str) -> str:
    return "\n".join(
        [
            "",
            "## Signature",
            "",
            f"The registrar signed this version's name, number, creation time and files: SHA-256 "
            f"`{digest}`, Ed25519 signature `{signature}` (tags `model_sha256`, `model_signature`; "
            f"the public key is the store's, `{key_setting}` on a stack).",
            "",
        ]
    )


def promote_section(
    evaluation: Mapping[str, Any],
    pca: Mapping[str, float],
    anomaly: Mapping[str, Any],
    decision: str,
    test_digest: str,
) -> str:
    """Test scores (evaluate's) beside PCA's at the same code size (compare-pca's row), the
    anomaly stage's figures, and the champion rule's decision."""
    rows = {
        f"{task} {metric}": f"{evaluation[task][metric]:.4f} | {pca[f'{task}_{metric}']:.4f}"
        for task in ("reconstruction", "denoising")
        for metric in ("mse", "psnr")
    }
    lines = [
        PROMOTE_MARK,
        "",
        f"## Test scores (test set digest `{test_digest}`)",
        "",
        f"| code size {evaluation['code_size']} | autoencoder | PCA |",
        "|---|---|---|",
        *[f"| {key} | {value} |" for key, value in rows.items()],
        "",
        f"Denoising SSIM {evaluation['denoising']['ssim']:.4f}, reconstruction SSIM "
        f"{evaluation['reconstruction']['ssim']:.4f}.",
        "",
        "## Anomaly figures",
        "",
        *_anomaly_lines(anomaly),
        "",
        "## Champion decision",
        "",
        decision,
        "",
    ]
    return "\n".join(lines)


def _anomaly_lines(anomaly: Mapping[str, Any]) -> list[str]:
    shares = anomaly.get("not_a_digit", {})
    lines = [
        f"Reconstruction error of clean pictures, MNIST test against Fashion-MNIST test: ROC AUC "
        f"{anomaly['roc_auc']:.5f}."
        if anomaly.get("ood_available")
        else "Fashion-MNIST was unavailable: no ROC AUC, and no garments below.",
        "",
    ]
    if shares:
        flagged = {label: f"{shares[key]:.2%}" for key, label in PICTURES.items() if key in shares}
        lines += _table(flagged, ("pictures", "judged not a digit by this version"))
    return lines


def completed(card: str, section: str) -> str:
    """`card` with `section` in place of anything an earlier promote wrote."""
    return card.split(PROMOTE_MARK)[0].rstrip("\n") + "\n\n" + section
