"""Serve the registry's champion over HTTP, once its files check out.

    python -m mnist_ae.serve --port 5001            # models:/<registered model>@champion
    python -m mnist_ae.serve --version 3 --port 5001

What `mlflow models serve -m models:/NAME@champion` does, except that the version is first
downloaded and its files compared with the SHA-256 its training recorded, and the server then
runs that checked copy: a version whose files were changed after registration is refused. The
store is MLFLOW_TRACKING_URI, else this repository's mlflow.db. Requests: POST /invocations
with {"inputs": N x 1 x 28 x 28 floats in [0, 1]}; answers {"predictions": the same shape}.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from mnist_ae.plumbing.cli import run_stage
from mnist_ae.plumbing.params import load_params
from mnist_ae.plumbing.repo import repo_root
from mnist_ae.tracking import registry, store


def parser() -> argparse.ArgumentParser:
    """The command line, also for the docs' check of every command they show."""
    top = argparse.ArgumentParser(
        prog="python -m mnist_ae.serve", description=__doc__.split("\n")[0]
    )
    top.add_argument("--host", default="127.0.0.1", help="address to listen on")
    top.add_argument("--port", type=int, default=5001)
    top.add_argument("--version", default="@champion", help="a version number, or @alias")
    top.add_argument("--params", type=Path, help="params.yaml (default: the repository's)")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    params = load_params(args.params or repo_root() / "params.yaml")
    store.connect_to_read(repo_root())
    name = params.mlflow.registered_model
    with tempfile.TemporaryDirectory(prefix="served-model-") as copy:
        version, local = registry.verified_copy(name, args.version, Path(copy))
        print(
            f"serving {name} version {version.version} on http://{args.host}:{args.port}",
            flush=True,
        )
        command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(local)]
        command += ["--env-manager", "local", "-h", args.host, "-p", str(args.port)]
        # MLflow starts its server as `uvicorn` from PATH: this environment's, activated or not
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        server = subprocess.Popen(command, start_new_session=True, env=os.environ | {"PATH": path})
        try:
            return server.wait()
        finally:  # a signal to us stops the server and its workers too
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGTERM)
            server.wait()


if __name__ == "__main__":
    run_stage(lambda: sys.exit(main()))
