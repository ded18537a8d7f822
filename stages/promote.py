"""DVC stage `promote`: the autoencoder against PCA at its own code size (evaluate's scores,
compare-pca's table), its registered version tagged with the result, then the champion rule:
`@champion` moves to the best comparable version that beats PCA."""

from __future__ import annotations

from mnist_ae.analysis.comparison import (
    autoencoder_point,
    compare,
    read_anomaly,
    read_evaluation,
    read_pca_table,
    save_comparison_report,
)
from mnist_ae.data.splits import split_path
from mnist_ae.pipeline import promote
from mnist_ae.pipeline.analysis import AnalysisStage
from mnist_ae.plumbing.cli import run_stage
from mnist_ae.plumbing.digests import sha256_files
from mnist_ae.tracking import runs


def main() -> None:
    stage = AnalysisStage.from_command_line(
        "promote",
        __doc__,
        {
            "evaluation": "evaluate's metrics.json",
            "pca": "compare-pca's pca.csv",
            "processed": "clean splits (the test set's digest)",
            "noisy": "noisy splits (likewise)",
            "anomaly": "the anomaly stage's metrics.json (for the model card)",
        },
        uses_model=False,
    )
    args, params = stage.args, stage.params
    with stage.tracked(("noise.std",)):
        evaluation, pca_rows = read_evaluation(args.evaluation), read_pca_table(args.pca)
        autoencoder = autoencoder_point(evaluation)
        comparison = compare(pca_rows, autoencoder)
        tests = [split_path(args.processed, "test"), split_path(args.noisy, "test")]
        tags = promote.evaluation_tags(
            evaluation, comparison["beats_pca"], params.noise.std, sha256_files(tests)[:16]
        )
        ratios = {k: v for k, v in comparison.items() if k.endswith(("_ratio", "_db"))}
        with stage.report() as out:
            save_comparison_report(out, pca_rows, autoencoder, comparison)
            runs.log_metrics({f"vs_pca_{k}": v for k, v in ratios.items()})
        anomaly = read_anomaly(args.anomaly)
        pca = next(row for row in pca_rows if row["code_size"] == autoencoder["code_size"])
        decision = promote.promote(stage.record, tags, evaluation, pca, anomaly)
        runs.set_tags({"champion_decision": decision.why})
    if comparison["pca_lossless_at_code_size"]:
        print(
            f"code size {autoencoder['code_size']} >= 784 pixels: PCA with 784 components is "
            "lossless on clean input, so the comparison that matters is denoising"
        )
    print("  ".join(f"{k} {v:.3f}" for k, v in ratios.items()))
    print(decision.why)


if __name__ == "__main__":
    run_stage(main)
