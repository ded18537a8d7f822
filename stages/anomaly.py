"""DVC stage `anomaly`: anomaly detection by reconstruction error, MNIST's test set against
Fashion-MNIST's. ROC AUC, and the detection rate at a threshold set on MNIST's validation split
for the chosen false-alarm rate; a histogram of both score distributions."""

from __future__ import annotations

from pathlib import Path

import mlflow

from mnist_ae import figures, tracking
from mnist_ae.analysis import detect_anomalies, reconstruction_errors
from mnist_ae.checkpoints import load_checkpoint
from mnist_ae.cli import run_stage, stage_parser
from mnist_ae.datasets import OOD_MISSING, load_split
from mnist_ae.devices import select_device
from mnist_ae.params import flatten, load_params
from mnist_ae.storage import publish_files, write_json


def main() -> None:
    parser = stage_parser(__doc__)
    parser.add_argument("--processed", type=Path, required=True, help="clean MNIST splits")
    parser.add_argument("--fashion", type=Path, required=True, help="download-fashion's output")
    parser.add_argument("--model", type=Path, required=True, help="the train stage's directory")
    parser.add_argument("--out", type=Path, required=True, help="directory for the reports")
    args = parser.parse_args()
    params = load_params(args.params)
    run_record = tracking.read_run_record(args.model / tracking.RUN_RECORD)
    device = select_device(params.train.device)

    missing = args.fashion / OOD_MISSING
    with publish_files(args.out) as out:
        if missing.exists():
            reason = missing.read_text().strip()
            metrics = {"ood_available": False}
            figures.note(f"Anomaly analysis skipped: Fashion-MNIST unavailable.\n{reason[:300]}",
                         out / "scores.png")  # fmt: skip
            print(f"anomaly analysis skipped: Fashion-MNIST unavailable ({reason})")
        else:
            model = load_checkpoint(args.model / "model.pt", device)
            batch = params.evaluate.batch_size
            scores = {
                name: reconstruction_errors(model, load_split(path).images, batch, device)
                for name, path in (("val", args.processed / "val.npz"),
                                   ("MNIST test", args.processed / "test.npz"),
                                   ("Fashion-MNIST test", args.fashion / "test.npz"))
            }  # fmt: skip
            report = detect_anomalies(scores.pop("val"), *scores.values(),
                                      params.anomaly.false_alarm_rate)  # fmt: skip
            metrics = {"ood_available": True, **report.as_dict()}
            title = (f"ROC AUC {report.roc_auc:.4f}; at {params.anomaly.false_alarm_rate:.0%} "
                     f"false alarms (validation) {report.detection_rate:.1%} detected")  # fmt: skip
            figures.score_histogram(scores, report.threshold, out / "scores.png", title)
            print(title)
        write_json(out / "metrics.json", metrics)
        tracking.setup(params.mlflow.experiment)
        with tracking.resume_run(run_record["run_id"]):
            tracking.log_params_once(flatten(params, ("anomaly",)))
            mlflow.log_metrics({f"anomaly_{k}": float(v) for k, v in metrics.items()})
            mlflow.log_artifacts(str(out), "anomaly")


if __name__ == "__main__":
    run_stage(main)
