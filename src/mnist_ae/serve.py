"""Serve the registry's champion over HTTP, once its files check out.

    python -m mnist_ae.serve --port 5001            # models:/<registered model>@champion
    python -m mnist_ae.serve --version 3 --port 5001

The version's signature is checked with the store's public key, its files downloaded and
compared with the SHA-256 it signs, and the server (mnist_ae.serve_app, under uvicorn) then runs
that checked copy: an unsigned version, or one whose tags or files were changed after
registration, is refused before anything of it is loaded. The store is MLFLOW_TRACKING_URI,
else this repository's mlflow.db. Requests: POST /invocations with {"inputs": N x 1 x 28 x 28
numbers in [0, 1]}, N at most 1,024, at most 16 MiB; answers {"predictions": the same shape,
"scores", "is_digit", "threshold"} (each picture's not-a-digit score and the version's verdict),
or HTTP 400 with the reason a request is refused.
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

from mnist_ae import serve_app
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
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            f"{serve_app.__name__}:from_environment",
        ]
        command += ["--host", args.host, "--port", str(args.port), "--log-level", "warning"]
        env = os.environ | {serve_app.MODEL_SETTING: str(local)}
        server = subprocess.Popen(command, start_new_session=True, env=env)
        try:
            return server.wait()
        finally:  # a signal to us stops the server and its workers too
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGTERM)
            server.wait()


if __name__ == "__main__":
    run_stage(lambda: sys.exit(main()))
