"""DVC stage `evaluate`: test-set reconstruction and denoising metrics, the reconstruction grids,
then the registry's champion rule, once the reports are in place."""

from __future__ import annotations

import mlflow

from mnist_ae import champion, registry, tracking
from mnist_ae.analysis_stage import AnalysisStage
from mnist_ae.cli import run_stage
from mnist_ae.comparison import pca_at_code_size
from mnist_ae.datasets import files_digest, load_split, split_path, to_unit
from mnist_ae.evaluation import evaluate_autoencoder, save_report
from mnist_ae.metrics import TASKS, mse_psnr


def main() -> None:
    stage = AnalysisStage.from_command_line(
        __doc__, {"processed": "clean splits", "noisy": "noisy splits"}
    )
    args, params, device = stage.args, stage.params, stage.device
    model = stage.load_model()
    test_files = [split_path(args.processed, "test"), split_path(args.noisy, "test")]
    clean, noisy = (load_split(path) for path in test_files)
    result = evaluate_autoencoder(model, clean, noisy, params.evaluate.batch_size, device)
    train = to_unit(load_split(split_path(args.processed, "train")).images).to(device)
    test = [to_unit(split.images).to(device) for split in (clean, noisy)]
    pca = pca_at_code_size(train, model.code_size, *test)
    psnr = result.metrics["denoising"]["psnr"]
    name, version = stage.run_record["registered_model"], stage.run_record["version"]
    with stage.tracked(("evaluate", "noise.std")):
        for path, split in zip(test_files, (clean, noisy), strict=True):
            tracking.log_split(f"{path.parent.name}/test", path, split.images, "evaluation")
        with stage.report("evaluate") as out:
            extra = {
                "code_size": model.code_size,
                "pca_same_code_size": pca,
                "noisy_input": mse_psnr(to_unit(noisy.images), to_unit(clean.images)),
            }
            save_report(out, result, clean, noisy, extra)
            mlflow.log_metrics(result.flat_metrics())
            mlflow.log_metric("pca_same_code_size_denoising_psnr", pca["denoising_psnr"])
        # The reports are in place: now the version's evaluation, then the champion rule.
        evaluation = {k: round(v, 6) for k, v in result.flat_metrics().items() if "digit" not in k}
        registry.tag_version(
            name,
            version,
            evaluation
            | {
                champion.BEATS_PCA: str(psnr > pca["denoising_psnr"]).lower(),
                "noise_std": params.noise.std,
                "test_digest": files_digest(test_files)[:16],
            },
        )
        decision = champion.promote(name, version)
        mlflow.set_tag("champion_decision", decision.why)
    for task in TASKS:
        print(f"{task}: " + "  ".join(f"{k} {v:.4f}" for k, v in result.metrics[task].items()))
    print(decision.why)


if __name__ == "__main__":
    run_stage(main)
