"""Everything worth measuring on a GPU, in one command and one JSON summary (under 8 minutes on
one H100 or H200):

    PYTHONPATH=src python benchmarks/gpu_check.py --out gpu-check.json

1. our training loop against the naive Dataset + DataLoader loop, batch 128, both architectures
   (benchmarks/train_throughput.py, in this process);
2. the article's 50-epoch run (arch seed, 60,000 images, batch 128) eager and with --compile;
3. the default pipeline (`dvc exp run -S train.device=cuda`) in a temporary copy of this
   checkout: its time and test denoising PSNR (bf16 autocast, precision auto);
4. the same training in fp32 (`dvc exp run evaluate -S train.precision=fp32` in that copy): bf16
   against fp32 quality for the default.

Parts 1 and 2 need only torch (and PYTHONPATH=src); parts 3 and 4 need the project's environment
(`uv sync`: dvc, mlflow, ...) and MNIST: this checkout's data/raw/ when it has one (no network
needed), else the download stage's sources. A part that cannot run is recorded with the reason
and the others still run. Without CUDA it says so and exits 2; --cpu-smoke runs every part at a
tiny size on the CPU, to check the script itself (its figures mean nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # train_throughput: a sibling script
import train_throughput

from mnist_ae.model.devices import configure_backends, device_description, select_device
from mnist_ae.plumbing.repo import copy_checkout

REPO = Path(__file__).resolve().parents[1]
NEEDS_CUDA = (
    "gpu_check.py needs a CUDA GPU and torch.cuda.is_available() is False here: run it on the GPU "
    "machine (docs/gpu.md); --cpu-smoke only checks the script"
)


def throughput(device: torch.device, smoke: bool) -> dict[str, object]:
    """Part 1: the ratio of our loop to the naive one at batch 128, for each architecture."""
    found = {}
    for arch in ("seed", "conv"):
        args = argparse.Namespace(
            arch=arch, latent_dim=32, batch_size=128, precision="auto", compile=False,
            images=256 if smoke else 60_000, data=None, warmup_images=128 if smoke else 2_560,
            rounds=1 if smoke else 3,
        )  # fmt: skip
        found[arch] = train_throughput.compare_loops(args, device)
    return found


def article_runs(device: torch.device, smoke: bool) -> dict[str, object]:
    """Part 2: the article's full run, eager and compiled."""
    found: dict[str, object] = {}
    if smoke:  # compiling alone takes half a minute on a CPU: the smoke run checks the rest
        found["compiled"] = {"skipped": "--cpu-smoke"}
    for compiled in (False,) if smoke else (False, True):
        args = argparse.Namespace(
            batch_size=128, precision="auto", compile=compiled, data=None,
            epochs=1 if smoke else 50, full_images=384 if smoke else 60_000,
        )  # fmt: skip
        found["compiled" if compiled else "eager"] = train_throughput.full_run(args, device)
    return found


def project_tools() -> dict[str, str] | None:
    """dvc and python of the project's environment: on PATH, else .venv/bin."""
    for folder in (None, REPO / ".venv" / "bin"):
        dvc = shutil.which("dvc", path=str(folder) if folder else None)
        if dvc is not None:
            return {"dvc": dvc, "bin": str(Path(dvc).parent)}
    return None


def pipeline(device: torch.device, smoke: bool, keep: Path | None) -> dict[str, object]:
    """Parts 3 and 4: the default pipeline on the device in a temporary copy, then fp32."""
    tools = project_tools()
    if tools is None:
        return {"skipped": "no dvc: needs the project's environment (uv sync, or dev.py once)"}
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    try:
        copy_checkout(REPO, work)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
        env["PATH"] = f"{tools['bin']}{os.pathsep}{env['PATH']}"  # the stages call `python`
        env.pop("PYTHONPATH", None)  # the environment's own package, not this checkout's src
        git = ["git", "-c", "user.name=gpu-check", "-c", "user.email=gpu-check@localhost"]
        for command in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "gpu check"]):
            subprocess.run([*git, *command], cwd=work, env=env, check=True, capture_output=True)
        settings = [f"train.device={device.type}"]
        if (REPO / "data" / "raw").is_dir():  # no network needed
            settings += ["data.source=local", f"data.local_dir={REPO / 'data' / 'raw'}"]
        if smoke:
            settings += ["data.limit=200", "data.test_limit=100", "train.epochs=1"]
        default = ["exp", "run", *(arg for s in settings for arg in ("-S", s))]
        found: dict[str, object] = {"default": timed_dvc(default, work, env) | read_scores(work)}
        fp32 = ["exp", "run", "evaluate", "-S", "train.precision=fp32"]
        found["fp32"] = timed_dvc(fp32, work, env) | read_scores(work)
        bf16, single = (found[k].get("test_denoising_psnr") for k in ("default", "fp32"))
        if bf16 is not None and single is not None:
            found["default_minus_fp32_db"] = round(bf16 - single, 4)
        if keep is not None:
            shutil.copytree(work / "reports", keep, dirs_exist_ok=True)
        return found
    finally:
        shutil.rmtree(work, ignore_errors=True)


def timed_dvc(args: list[str], repo: Path, env: dict[str, str]) -> dict[str, object]:
    started = time.perf_counter()
    done = subprocess.run(["dvc", *args], cwd=repo, env=env, capture_output=True, text=True)
    found: dict[str, object] = {
        "command": "dvc " + " ".join(args),
        "seconds": round(time.perf_counter() - started, 1),
        "returncode": done.returncode,
    }
    epochs = [float(s) for s in re.findall(r"^epoch \d+/\d+ .* ([\d.]+) s ", done.stdout, re.M)]
    if epochs:
        found["epoch_seconds"] = epochs
    if done.returncode != 0:
        found["error"] = (done.stderr or done.stdout).strip().splitlines()[-5:]
    return found


def read_scores(repo: Path) -> dict[str, object]:
    reports = repo / "reports"
    found: dict[str, object] = {}
    with_files = {"evaluate": reports / "evaluate" / "metrics.json",
                  "train": reports / "train" / "metrics.json"}  # fmt: skip
    if with_files["evaluate"].is_file():
        evaluation = json.loads(with_files["evaluate"].read_text())
        found["test_denoising_psnr"] = evaluation["denoising"]["psnr"]
        found["test_denoising_ssim"] = evaluation["denoising"]["ssim"]
    if with_files["train"].is_file():
        found["precision"] = json.loads(with_files["train"].read_text())["precision"]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("gpu-check.json"), help="the summary")
    parser.add_argument("--skip-pipeline", action="store_true", help="parts 1 and 2 only")
    parser.add_argument("--keep-reports", type=Path, help="copy the pipeline's reports here")
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU")
    args = parser.parse_args()
    if not args.cpu_smoke and not torch.cuda.is_available():
        print(f"error: {NEEDS_CUDA}", file=sys.stderr)
        return 2
    device = select_device("cpu" if args.cpu_smoke else "cuda")
    configure_backends(device)
    began = time.perf_counter()
    summary: dict[str, object] = {
        "machine": {
            "device": device_description(device),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "cpu": platform.processor() or platform.machine(),
            "cpu_threads": torch.get_num_threads(),
        },
        "cpu_smoke": args.cpu_smoke,
    }
    parts = [("throughput_batch_128", throughput), ("article_50_epochs", article_runs)]
    for name, part in parts:
        try:
            summary[name] = part(device, args.cpu_smoke)
        except Exception as error:  # recorded; the other parts of a rare GPU slot still run
            summary[name] = {"error": f"{type(error).__name__}: {error}"}
    if args.skip_pipeline:
        summary["default_pipeline"] = {"skipped": "--skip-pipeline"}
    else:
        summary["default_pipeline"] = pipeline(device, args.cpu_smoke, args.keep_reports)
    summary["seconds"] = round(time.perf_counter() - began, 1)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"summary: {args.out} ({summary['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
