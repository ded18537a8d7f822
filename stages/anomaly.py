"""DVC stage `anomaly`: anomaly detection by reconstruction error, MNIST's test set against
Fashion-MNIST's. ROC AUC, and the detection rate at a threshold set on MNIST's validation split
for the chosen false-alarm rate; a histogram of both score distributions."""

from __future__ import annotations

import mlflow

from mnist_ae.analysis import figures
from mnist_ae.analysis.anomaly import detect_anomalies, mark_note_read, reconstruction_errors
from mnist_ae.data.splits import OOD_MISSING, load_split, split_path
from mnist_ae.pipeline.analysis import AnalysisStage
from mnist_ae.plumbing.cli import run_stage
from mnist_ae.plumbing.outputs import write_json


def main() -> None:
    stage = AnalysisStage.from_command_line(
        "anomaly",
        __doc__,
        {"processed": "clean MNIST splits", "fashion": "download-fashion's output"},
    )
    args, params = stage.args, stage.params
    rate, batch = params.anomaly.false_alarm_rate, params.evaluate.batch_size
    missing = args.fashion / OOD_MISSING
    with stage.tracked(("anomaly.false_alarm_rate", "evaluate.batch_size")):
        if missing.exists():
            reason = missing.read_text().splitlines()[0].strip()
            scores, report, title = None, None, f"skipped: Fashion-MNIST unavailable ({reason})"
        else:
            model = stage.load_model()
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
        with stage.report() as out:
            write_json(out / "metrics.json", metrics)
            if report is None:
                figures.note(f"Anomaly analysis {title[:300]}", out / "scores.png")
            else:
                figures.score_histogram(scores, report.threshold, out / "scores.png", title)
            mlflow.log_metrics({f"anomaly_{k}": float(v) for k, v in metrics.items()})
    if report is None:
        mark_note_read(missing)
    print(f"anomaly analysis {title}" if report is None else title)


if __name__ == "__main__":
    run_stage(main)
