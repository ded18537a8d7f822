"""The throughput benchmark must run on the GPU machines, which have torch but none of our other
packages: its modules may import nothing else. (Speed itself is measured, never asserted.)"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOT_ON_GPU_MACHINES = [
    "mlflow",
    "pydantic",
    "dvc",
    "yaml",
    "sklearn",
    "matplotlib",
    "tqdm",
    "torchvision",
    "torchmetrics",
]


def run_python(code_or_args: list[str]) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONPATH": str(REPO / "src")}
    return subprocess.run(
        [sys.executable, *code_or_args], cwd=REPO, env=env, capture_output=True, text=True
    )


def test_benchmark_modules_import_only_torch():
    check = (  # what our modules add to a bare `import torch` (which may pull in tqdm itself)
        "import sys, torch; before = set(sys.modules); "
        "import mnist_ae.model.networks, mnist_ae.model.loop, mnist_ae.model.devices; "
        "added = {m.split('.')[0] for m in set(sys.modules) - before}; "
        f"print(sorted(added & set({NOT_ON_GPU_MACHINES!r})))"
    )
    result = run_python(["-c", check])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.stages  # a training in a subprocess
def test_benchmark_runs_and_reports_both_loops_and_their_ratio():
    result = run_python(
        [
            "benchmarks/train_throughput.py",
            "--arch",
            "conv",
            "--images",
            "512",
            "--warmup-images",
            "256",
            "--rounds",
            "1",
            "--batch-size",
            "64",
        ]
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("device: cpu; torch ")
    naive = re.search(r"naive DataLoader loop \(fp32\): +([\d,]+) images/s", out)
    ours = re.search(r"our loop \(fp32, channels_last\): +([\d,]+) images/s", out)
    ratio = re.search(r"ratio: ([\d.]+)x", out)
    assert naive and ours and ratio, out
    naive, ours = (float(m.group(1).replace(",", "")) for m in (naive, ours))
    assert naive > 0 and ours > 0
    assert float(ratio.group(1)) == pytest.approx(ours / naive, rel=0.02)  # of the rounded two
    assert re.search(r"peak host RSS [\d,]+ MiB", out)


def test_gpu_check_without_cuda_says_it_needs_cuda(tmp_path):
    result = run_python(["benchmarks/gpu_check.py", "--out", str(tmp_path / "summary.json")])
    assert result.returncode == 2 and not (tmp_path / "summary.json").exists()
    assert result.stderr.strip() == (
        "error: gpu_check.py needs a CUDA GPU and torch.cuda.is_available() is False here: run "
        "it on the GPU machine (docs/gpu.md); --cpu-smoke only checks the script"
    )


@pytest.mark.stages  # trainings in a subprocess
def test_gpu_check_writes_its_summary(tmp_path):
    """Its parts at a tiny size on the CPU (the pipeline part is what dev.py repro runs)."""
    summary = tmp_path / "summary.json"
    result = run_python(
        ["benchmarks/gpu_check.py", "--cpu-smoke", "--skip-pipeline", "--out", str(summary)]
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(summary.read_text())
    for arch in ("seed", "conv"):
        loops = found["throughput_batch_128"][arch]
        assert loops["ratio"] == pytest.approx(
            loops["our_images_per_second"] / loops["naive_images_per_second"], rel=0.02
        )
    eager = found["article_50_epochs"]["eager"]
    assert eager["epochs"] == 1 and eager["images_per_second"] > 0
    assert found["default_pipeline"] == {"skipped": "--skip-pipeline"}
    assert found["machine"]["torch"] == torch_version()


def torch_version() -> str:
    return run_python(["-c", "import torch; print(torch.__version__)"]).stdout.strip()
