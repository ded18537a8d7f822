"""DVC stage `anomaly`: anomaly detection by reconstruction error, MNIST's test set against
Fashion-MNIST's. ROC AUC, and the detection rate at a threshold set on MNIST's validation split
for the chosen false-alarm rate; a histogram of both score distributions. Then the share of
pictures the version's own not-a-digit verdict (its calibration, models/calibration.json)
flags: MNIST test digits and Fashion-MNIST test images, clean and with the pipeline's noise,
printed letters clean and noisy, uniform noise, and the pipeline's noise on a blank picture."""

from __future__ import annotations

import numpy as np

from mnist_ae.analysis import figures, not_a_digit
from mnist_ae.analysis.anomaly import detect_anomalies, mark_note_read, reconstruction_errors
from mnist_ae.analysis.evaluation import reconstruct
from mnist_ae.data.noise import add_gaussian_noise, split_rng
from mnist_ae.data.pictures import printed_letters
from mnist_ae.data.pixels import to_unit
from mnist_ae.data.splits import OOD_MISSING, load_split, split_path
from mnist_ae.pipeline.analysis import AnalysisStage
from mnist_ae.plumbing.cli import run_stage
from mnist_ae.plumbing.outputs import write_json
from mnist_ae.tracking import runs


def main() -> None:
    stage = AnalysisStage.from_command_line(
        "anomaly",
        __doc__,
        {
            "processed": "clean MNIST splits",
            "noisy": "noisy MNIST splits",
            "fashion": "download-fashion's output",
        },
    )
    args, params = stage.args, stage.params
    rate, batch = params.anomaly.false_alarm_rate, params.evaluate.batch_size
    missing = args.fashion / OOD_MISSING
    keys = ("anomaly.false_alarm_rate", "evaluate.batch_size", "seed", "noise.std")
    with stage.tracked(keys):
        model = stage.load_model()
        calibration = not_a_digit.read(args.model / not_a_digit.FILE)
        fashion = None if missing.exists() else load_split(args.fashion / "test.npz").images
        shares = flagged_shares(stage, model, calibration, fashion)
        if missing.exists():
            reason = missing.read_text().splitlines()[0].strip()
            scores, report, title = None, None, f"skipped: Fashion-MNIST unavailable ({reason})"
        else:
            sets = {
                "val": split_path(args.processed, "val"),
                "MNIST test": split_path(args.processed, "test"),
                "Fashion-MNIST test": args.fashion / "test.npz",
            }
            scores = {
                name: reconstruction_errors(model, load_split(path).images, batch, stage.device)
                for name, path in sets.items()
            }
            report = detect_anomalies(scores.pop("val"), *scores.values(), rate)
            title = (
                f"ROC AUC {report.roc_auc:.4f}; at {rate:.0%} false alarms (validation) "
                f"{report.detection_rate:.1%} detected"
            )
        metrics = {"ood_available": report is not None, **(report.as_dict() if report else {})}
        metrics["not_a_digit"] = shares
        with stage.report() as out:
            write_json(out / "metrics.json", metrics)
            if report is None:
                figures.note(f"Anomaly analysis {title[:300]}", out / "scores.png")
            else:
                figures.score_histogram(scores, report.threshold, out / "scores.png", title)
            flat = {k: v for k, v in metrics.items() if k != "not_a_digit"}
            flat |= {f"not_a_digit_{k}": v for k, v in shares.items()}
            runs.log_metrics({f"anomaly_{k}": float(v) for k, v in flat.items()})
    if report is None:
        mark_note_read(missing)
    print(f"anomaly analysis {title}" if report is None else title)
    print("judged not a digit: " + ", ".join(f"{k} {v:.2%}" for k, v in shares.items()))


def flagged_shares(stage, model, calibration, fashion) -> dict[str, float]:
    """The share of each set of pictures the version's verdict judges not to be digits. The
    noise drawn here is seeded from the params, a stream per set."""
    args, params = stage.args, stage.params
    std, seed = params.noise.std, params.seed
    letters = printed_letters()
    sets = {
        "mnist_clean": load_split(split_path(args.processed, "test")).images,
        "mnist_noisy": load_split(split_path(args.noisy, "test")).images,
        "letters_clean": letters,
        "letters_noisy": add_gaussian_noise(letters, std, split_rng(seed, "not-a-digit", 1)),
        "uniform_noise": split_rng(seed, "not-a-digit", 2).integers(
            0, 256, (1000, 28, 28), dtype=np.uint8
        ),
        "noise_alone": add_gaussian_noise(
            np.zeros((1000, 28, 28), np.uint8), std, split_rng(seed, "not-a-digit", 3)
        ),
    }
    if fashion is not None:
        sets["fashion_clean"] = fashion
        sets["fashion_noisy"] = add_gaussian_noise(fashion, std, split_rng(seed, "not-a-digit", 0))
    shares = {}
    for name, images in sets.items():
        outputs = reconstruct(model, images, params.evaluate.batch_size, stage.device)
        scores = calibration.scores(to_unit(images).numpy(), outputs)
        shares[name] = float(np.mean(~calibration.is_digit(scores)))
    return shares


if __name__ == "__main__":
    run_stage(main)
