#!/usr/bin/env python3
"""Set up and run the project with nothing but python3.

    python3 dev.py repro [dvc repro options]   # the whole pipeline
    python3 dev.py test  [pytest options]      # the test suite
    python3 dev.py ui                          # mlflow ui on this repository's store
    python3 dev.py stack up|env|status|down    # the local team stack (PostgreSQL, S3, MLflow)
    python3 dev.py exps  [dvc exp show options] # experiments: their params and headline metrics
    python3 dev.py deps                        # rewrite dvc.yaml's code dependencies from imports

Each call installs uv if it is missing (into .tools/), syncs .venv exactly to uv.lock, then runs
the command inside that environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
TOOLS = ROOT / ".tools"
UV_REQUIREMENT = "uv>=0.8,<0.14"
# The columns of `dvc exp show` worth a glance (it would show every dependency's hash too).
HEADLINE = (
    r"Experiment|State|denoising\.psnr|pca\.denoising\.psnr|beats_pca|roc_auc|noise\.std"
    r"|model\.(arch|latent_dim)|train\.(lr|epochs|batch_size)"
)
COMMANDS = {
    "repro": ["dvc", "repro"],
    "test": ["pytest"],
    "ui": ["mlflow", "ui", "--backend-store-uri", f"sqlite:///{ROOT / 'mlflow.db'}"],
    "stack": ["python", "-m", "mnist_ae.stack"],
    "exps": ["dvc", "exp", "show", "--drop", ".*", "--keep", HEADLINE],
    "deps": ["python", "-m", "mnist_ae.pipeline.code_deps"],
}


def find_uv() -> str:
    """uv from PATH, else from .tools/, else installed there with pip (once)."""
    on_path = shutil.which("uv")
    if on_path:
        return on_path
    local = TOOLS / "bin" / "uv"
    if not local.exists():
        print(f"uv not found: installing {UV_REQUIREMENT} into {TOOLS}", file=sys.stderr)
        venv.create(TOOLS, with_pip=True, clear=True)
        pip = [str(TOOLS / "bin" / "python"), "-m", "pip", "install", "--quiet", UV_REQUIREMENT]
        subprocess.run(pip, check=True)
    return str(local)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    uv = find_uv()
    # Compiled bytecode: stages start seconds faster where PYTHONDONTWRITEBYTECODE is set.
    sync = [uv, "sync", "--locked", "--quiet", "--compile-bytecode"]
    subprocess.run(sync, cwd=ROOT, check=True)
    command = [uv, "run", "--locked", "--quiet", *COMMANDS[argv[0]], *argv[1:]]
    os.chdir(ROOT)
    os.execv(uv, command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
