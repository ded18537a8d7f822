#!/usr/bin/env python3
"""Set up and run the project with nothing but python3.

    python3 dev.py repro [dvc repro options]   # the whole pipeline
    python3 dev.py test  [pytest options]      # the test suite (about 6 minutes on 2 cores)
    python3 dev.py test --quick                # what needs no server, pipeline or training
    python3 dev.py ui                          # mlflow ui on this repository's store
    python3 dev.py stack up|env|status|down    # the local team stack (PostgreSQL, S3, MLflow)
    python3 dev.py exps  [dvc exp show options] # experiments: their params and headline metrics
    python3 dev.py deps                        # rewrite dvc.yaml's code dependencies from imports

Each call installs uv if it is missing (into .tools/), syncs .venv exactly to uv.lock, then runs
the command inside that environment.
"""

from __future__ import annotations

import glob
import importlib
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
    r"Experiment|State|denoising\.psnr|pca\.denoising\.psnr|beats_pca|roc_auc|^precision$"
    r"|noise\.std|model\.(arch|latent_dim)"
    r"|train\.(loss|lr|epochs|batch_size|schedule|fresh_noise)"
)
COMMANDS = {
    "repro": ["dvc", "repro"],
    "test": ["pytest"],
    "ui": ["mlflow", "ui", "--backend-store-uri", f"sqlite:///{ROOT / 'mlflow.db'}"],
    "stack": ["python", "-m", "mnist_ae.stack"],
    "exps": ["dvc", "exp", "show", "--drop", ".*", "--keep", HEADLINE],
    "deps": ["python", "-m", "mnist_ae.pipeline.code_deps"],
}


QUICK = "not (services or pipeline or stages)"  # pytest's -m for `test --quick`
FIX = "run `apt-get install python3-venv` (Debian, Ubuntu) or `pip install uv`, then this again"


def stack_packages_missing() -> list[str]:
    """The system's packages the full suite's team stack runs that are not installed:
    PostgreSQL (Debian puts its programs under /usr/lib/postgresql/<version>/bin, off PATH) and
    nginx, the gateway of a stack on a network address."""
    missing = []
    if not (glob.glob("/usr/lib/postgresql/*/bin/initdb") or shutil.which("initdb")):
        missing.append("postgresql")
    if not (os.access("/usr/sbin/nginx", os.X_OK) or shutil.which("nginx")):
        missing.append("nginx")
    return missing


def find_uv() -> str:
    """uv from PATH, else from .tools/, else installed there (once)."""
    on_path = shutil.which("uv")
    if on_path:
        return on_path
    local = TOOLS / "bin" / "uv"
    if not local.exists():
        install_uv(local)
    return str(local)


def install_uv(local: Path) -> None:
    """Into a virtual environment in .tools/ when this Python has ensurepip; else with this
    Python's own pip into .tools/ (Debian and Ubuntu leave ensurepip to python3-venv)."""
    if has_module("ensurepip"):
        venv.create(TOOLS, with_pip=True, clear=True)
        pip = [str(TOOLS / "bin" / "python"), "-m", "pip", "install"]
    else:
        pip = [sys.executable, "-m", "pip", "install", "--target", str(TOOLS)]
    done = subprocess.run([*pip, "--quiet", UV_REQUIREMENT], capture_output=True, text=True)
    if done.returncode != 0 or not local.exists():
        shutil.rmtree(TOOLS, ignore_errors=True)
        why = (done.stderr.strip().splitlines() or ["pip failed"])[-1]
        if not has_module("pip"):
            why = "this Python has neither ensurepip nor pip"
        sys.exit(f"error: cannot install uv into {TOOLS} ({why}): {FIX}")
    print(f"uv was not on PATH: installed {UV_REQUIREMENT} into {TOOLS}", file=sys.stderr)


def has_module(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    command, rest = COMMANDS[argv[0]], argv[1:]
    if argv[0] == "test" and "--quick" in rest:
        rest = ["-m", QUICK, *(arg for arg in rest if arg != "--quick")]
    elif argv[0] == "test" and (missing := stack_packages_missing()):
        print(
            f"error: the test suite starts the team stack, which needs {' and '.join(missing)}: "
            f"apt-get install {' '.join(missing)} (as root, once), or run "
            "`python3 dev.py test --quick`",
            file=sys.stderr,
        )
        return 1
    uv = find_uv()
    # Compiled bytecode: stages start seconds faster where PYTHONDONTWRITEBYTECODE is set.
    sync = [uv, "sync", "--locked", "--quiet", "--compile-bytecode"]
    synced = subprocess.run(sync, cwd=ROOT)
    if synced.returncode != 0:
        return synced.returncode
    os.chdir(ROOT)
    os.execv(uv, [uv, "run", "--locked", "--quiet", *command, *rest])
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
