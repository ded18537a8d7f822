"""How long the README's commands take in a fresh clone: `python3 dev.py repro` stage by stage,
then the smoke run.

    python benchmarks/pipeline_times.py --out docs/results/pipeline-times.json

Clones this repository's HEAD into a new folder, runs `python3 dev.py repro` there (which
installs uv and syncs `.venv/` first; uv's own cache is left as it is), and timestamps each line
it prints: a stage's time runs from DVC's "Running stage" line to the next stage's (or the end),
and the epochs' times are the ones the train stage prints. Then the README's smoke run in the
same clone. Writes the times, the run's test denoising PSNR, the machine and the commit to
`--out`; the clone is removed.
Needs the network access that `repro` needs (PyPI; MNIST's mirrors or the PyPI wheel).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import machine

REPO = Path(__file__).resolve().parents[1]
SMOKE = ["-S", "data.limit=1000", "-S", "data.test_limit=1000", "-S", "train.epochs=1",
         "-S", "mlflow.registered_model=mnist-ae-smoke"]  # fmt: skip


def timed_lines(command: list[str], cwd: Path) -> tuple[float, list[tuple[float, str]]]:
    """Run `command` in `cwd` as a shell with `cwd`'s environment activated would, echoing its
    output; return its time and each line with its time."""
    began = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env["PATH"] = f"{cwd / '.venv' / 'bin'}{os.pathsep}{env['PATH']}"  # stages call `python`
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)  # fmt: skip
    lines = []
    for line in process.stdout:
        sys.stdout.write(line)
        lines.append((time.perf_counter() - began, line.rstrip()))
    if process.wait() != 0:
        raise SystemExit(f"{' '.join(command)} failed")
    return time.perf_counter() - began, lines


def stage_times(total: float, lines: list[tuple[float, str]]) -> dict[str, float]:
    starts = [(at, m[1]) for at, line in lines if (m := re.match(r"Running stage '(.+)':", line))]
    ends = [at for at, _ in starts[1:]] + [total]
    times = {"install and sync": starts[0][0] if starts else total}
    times |= {name: end - at for (at, name), end in zip(starts, ends, strict=True)}
    return {name: round(seconds, 1) for name, seconds in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("pipeline-times.json"))
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="mnist-ae-clone-"))
    try:
        clone = folder / "mnist-ae"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True,
                                text=True, check=True).stdout.strip()  # fmt: skip
        total, lines = timed_lines([sys.executable, "dev.py", "repro"], clone)
        epochs = [float(m[1]) for _, line in lines
                  if (m := re.match(r"epoch \d+/\d+ .* ([\d.]+) s ", line))]  # fmt: skip
        evaluated = json.loads((clone / "reports" / "evaluate" / "metrics.json").read_text())
        smoke, _ = timed_lines(["dvc", "exp", "run", "--temp", *SMOKE], clone)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    summary = {
        "machine": machine(),
        "commit": commit,
        "repro_s": round(total, 1),
        "stages_s": stage_times(total, lines),
        "epochs_s": epochs,
        # what this CPU's fp32 kernels made of the default run (the committed one: AVX2)
        "test_denoising_psnr": evaluated["denoising"]["psnr"],
        "smoke_run_s": round(smoke, 1),
    }
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "epochs_s"}, indent=2))


if __name__ == "__main__":
    main()
