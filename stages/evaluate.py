"""DVC stage `evaluate`: test-set reconstruction and denoising metrics, per-digit errors, the
reconstruction grid and the worst-denoised digits."""

from __future__ import annotations

from mnist_ae.analysis.evaluation import evaluate_autoencoder, save_report
from mnist_ae.analysis.metrics import mse_psnr
from mnist_ae.analysis.tasks import TASKS
from mnist_ae.data.pixels import to_unit
from mnist_ae.data.splits import load_split, split_path
from mnist_ae.pipeline.analysis import AnalysisStage
from mnist_ae.plumbing.cli import run_stage
from mnist_ae.tracking.runs import log_metrics, log_split


def main() -> None:
    stage = AnalysisStage.from_command_line(
        "evaluate", __doc__, {"processed": "clean splits", "noisy": "noisy splits"}
    )
    args, params = stage.args, stage.params
    with stage.tracked(("evaluate", "noise.std")):
        model = stage.load_model()
        test_files = [split_path(args.processed, "test"), split_path(args.noisy, "test")]
        clean, noisy = (load_split(path) for path in test_files)
        for path, split in zip(test_files, (clean, noisy), strict=True):
            log_split(f"{path.parent.name}/test", path, split.images, "evaluation")
        batch = params.evaluate.batch_size
        result = evaluate_autoencoder(model, clean, noisy, batch, stage.device)
        noisy_input = mse_psnr(to_unit(noisy.images), to_unit(clean.images))
        with stage.report() as out:
            extra = {"code_size": model.code_size, "noisy_input": noisy_input}
            save_report(out, result, clean, noisy, extra)
            # Also on the registered model's page: its test scores beside other versions'.
            model_id = stage.record.model_uri.removeprefix("models:/")
            log_metrics(result.flat_metrics(), model_id=model_id)
    for task in TASKS:
        print(f"{task}: " + "  ".join(f"{k} {v:.4f}" for k, v in result.metrics[task].items()))


if __name__ == "__main__":
    run_stage(main)
