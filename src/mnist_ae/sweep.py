"""The code-size sweep: one DVC experiment per code size through DVC's queue, then one chart of
the autoencoder's test error against PCA's at the same sizes.

    python -m mnist_ae.sweep run --sizes 2 4 8 16 32 64 128 --set train.epochs=10
    python -m mnist_ae.sweep collect        # (run does this at the end)

Each experiment is named sweep-code-<size> and reproduces the pipeline up to `promote` (so each
size is scored and the champion rule sees it; the latent map and anomaly figures are left out);
its MLflow runs carry that name, which is how `collect` finds the latest evaluation of each size.
PCA's errors come from compare-pca's pca.csv.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
from pathlib import Path

from mnist_ae.analysis import figures
from mnist_ae.plumbing.outputs import publish_files, write_csv
from mnist_ae.plumbing.params import load_params
from mnist_ae.plumbing.repo import repo_root
from mnist_ae.tracking import runs, store

PREFIX = "sweep-code-"


def dvc(*args: str) -> str:
    result = subprocess.run(["dvc", *args], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"dvc {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def run(sizes: list[int], settings: list[str], jobs: int) -> None:
    """Queue one experiment per size (up to promote), run the queue, wait for it to drain."""
    extra = [arg for setting in settings for arg in ("-S", setting)]
    for size in sizes:
        name = f"{PREFIX}{size}"
        dvc(
            "exp",
            "run",
            "--queue",
            "promote",
            "-n",
            name,
            "-S",
            f"model.latent_dim={size}",
            *extra,
        )
    # One dvc process runs the queue and shows each experiment's log until all have run (a
    # `dvc queue status` every few seconds would cost a dvc start-up each).
    ran = subprocess.run(["dvc", "exp", "run", "--run-all", "--jobs", str(jobs)])
    if ran.returncode != 0:
        sys.exit(f"dvc exp run --run-all failed (exit status {ran.returncode})")
    failed = [line for line in dvc("queue", "status").splitlines() if "Failed" in line]
    if failed:
        sys.exit("some sweep experiments failed (see `dvc queue logs NAME`):\n" + "\n".join(failed))


def collect(params_path: Path, pca_csv: Path, out: Path) -> list[dict[str, float]]:
    """The latest finished evaluation of each swept size, beside PCA at that size; CSV, chart,
    and an MLflow run of its own."""
    params = load_params(params_path)
    store.connect(params.mlflow.experiment, repo_root())
    evaluations = runs.finished_stage_runs("evaluate", PREFIX)
    with open(pca_csv) as handle:
        pca = {int(row["code_size"]): row for row in csv.DictReader(handle)}
    rows: dict[int, dict[str, float]] = {}
    for found in evaluations:
        size = int(found["experiment"].removeprefix(PREFIX))
        if size in rows or size not in pca:
            continue  # an older evaluation of the same size, or a size PCA was not scored at
        metrics = found["metrics"]
        rows[size] = {
            "code_size": size,
            "epochs": int(runs.params_of(found["parent_id"])["train.epochs"]),
            "autoencoder_reconstruction_mse": metrics["test_reconstruction_mse"],
            "autoencoder_denoising_mse": metrics["test_denoising_mse"],
            "autoencoder_denoising_psnr": metrics["test_denoising_psnr"],
            "pca_reconstruction_mse": float(pca[size]["reconstruction_mse"]),
            "pca_denoising_mse": float(pca[size]["denoising_mse"]),
            "pca_denoising_psnr": float(pca[size]["denoising_psnr"]),
        }
    table = [rows[size] for size in sorted(rows)]
    if not table:
        sys.exit(f"no finished evaluations of {PREFIX}* runs in MLflow with a size in {pca_csv}")
    with publish_files(out) as staging:
        write_csv(staging / "sweep.csv", table)
        figures.code_size_sweep(table, staging / "sweep.png")
        with runs.open_run(repo_root(), name="code-size-sweep", tags={"kind": "sweep"}):
            runs.log_files(staging, "sweep")
    for row in table:
        ae, linear = row["autoencoder_reconstruction_mse"], row["pca_reconstruction_mse"]
        print(f"code {row['code_size']:4d}: clean-input MSE {ae:.5f}, PCA {linear:.5f}")
    return table


def parser() -> argparse.ArgumentParser:
    """The command line, also for the docs' check of every command they show."""
    top = argparse.ArgumentParser(
        prog="python -m mnist_ae.sweep", description=__doc__.split("\n")[0]
    )
    top.add_argument("command", choices=("run", "collect"))
    top.add_argument("--sizes", type=int, nargs="+", default=[2, 4, 8, 16, 32, 64, 128])
    top.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        help="extra `dvc exp run -S` settings, e.g. train.epochs=10",
    )
    top.add_argument("--jobs", type=int, default=1, help="experiments run at once")
    top.add_argument("--params", type=Path, default=Path("params.yaml"))
    top.add_argument("--pca", type=Path, default=Path("reports/compare_pca/pca.csv"))
    top.add_argument("--out", type=Path, default=Path("reports/sweep"))
    return top


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.command == "run":
        run(args.sizes, args.settings, args.jobs)
    collect(args.params, args.pca, args.out)


if __name__ == "__main__":
    main()
