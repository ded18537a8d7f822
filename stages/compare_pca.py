"""DVC stage `compare-pca`: PCA at every code size of the sweep against the autoencoder's point."""

from __future__ import annotations

import mlflow

from mnist_ae.analysis_stage import AnalysisStage
from mnist_ae.cli import run_stage
from mnist_ae.comparison import autoencoder_point, compare, pca_scores, save_report
from mnist_ae.datasets import load_split, split_path, to_unit
from mnist_ae.pca import PCA


def main() -> None:
    stage = AnalysisStage.from_command_line(
        __doc__,
        {
            "processed": "clean splits",
            "noisy": "noisy splits",
            "evaluation": "evaluate's metrics.json",
        },
        uses_model=False,
    )
    args, params, device = stage.args, stage.params, stage.device
    autoencoder = autoencoder_point(args.evaluation)
    clean = to_unit(load_split(split_path(args.processed, "test")).images).to(device)
    noisy = to_unit(load_split(split_path(args.noisy, "test")).images).to(device)
    # One eigendecomposition on the device serves every code size of the sweep.
    pca = PCA.fit(to_unit(load_split(split_path(args.processed, "train")).images).to(device))
    sizes = sorted(set(params.compare_pca.code_sizes) | {autoencoder["code_size"]})
    rows = pca_scores(pca, sizes, clean, noisy)
    metrics = compare(rows, autoencoder)
    ratios = {k: v for k, v in metrics.items() if k.endswith(("_ratio", "_db"))}
    with stage.tracked(("compare_pca",)), stage.report("compare_pca") as out:
        save_report(out, rows, autoencoder, metrics)
        mlflow.log_metrics({f"vs_pca_{k}": v for k, v in ratios.items()})
        for row in rows:  # MLflow charts PCA's error against code size (step = code size)
            step = int(row["code_size"])
            mlflow.log_metrics(
                {f"pca_{k}": v for k, v in row.items() if k != "code_size"}, step=step
            )
    if metrics["pca_lossless_at_code_size"]:
        print(
            f"code size {autoencoder['code_size']} >= 784 pixels: PCA with 784 components is "
            "lossless on clean input, so the comparison that matters is denoising"
        )
    print("  ".join(f"{k} {v:.3f}" for k, v in ratios.items()))


if __name__ == "__main__":
    run_stage(main)
