"""Command line of the local team stack (see mnist_ae.stack)."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from mnist_ae import stack
from mnist_ae.plumbing.cli import run_stage
from mnist_ae.plumbing.repo import repo_root
from mnist_ae.stack import control
from mnist_ae.stack.layout import DVC_BUCKET, MLFLOW_BUCKET, Layout
from mnist_ae.stack.processes import StackError


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="dev.py stack", description=stack.__doc__.split("\n")[0])
    parser.add_argument("command", choices=("up", "env", "status", "down"))
    parser.add_argument(
        "--dir", type=Path, help="state folder (default: .stack/ in the repository)"
    )
    parser.add_argument("--port-base", type=int, help="first of the ten ports (default 15000)")
    args = parser.parse_args(argv)
    layout = Layout((args.dir or control.default_dir(repo_root())).resolve())

    if args.command == "up":
        began = time.monotonic()
        started = control.up(layout, args.port_base)
        took = f" in {time.monotonic() - began:.1f} s" if started else " (already running)"
        print(
            f"stack up{took}: MLflow {layout.url('mlflow')}, S3 {layout.url('s3')} "
            f"(buckets {MLFLOW_BUCKET}, {DVC_BUCKET}); state in {layout.root}"
        )
        print('use it from a shell: eval "$(python3 dev.py stack env)"')
    elif args.command == "env":
        if not layout.exists():
            raise StackError(f"no stack in {layout.root}: start one with `dev.py stack up`")
        for key, value in layout.client_env().items():
            print(f"export {key}={shlex.quote(value)}")
    elif args.command == "status":
        if not layout.exists():
            print(f"no stack in {layout.root}")
            return
        for name, state, address in control.status(layout):
            print(f"{name:10s} {address:16s} {state}")
    else:
        stopped = control.down(layout)
        print(f"stopped: {', '.join(stopped) or 'nothing was running'}; data kept in {layout.root}")


if __name__ == "__main__":
    run_stage(lambda: main(sys.argv[1:]))
