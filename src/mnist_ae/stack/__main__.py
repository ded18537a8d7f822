"""The team stack on this machine: PostgreSQL, S3 storage (SeaweedFS), an MLflow server and the
registrar that signs versions; on a network address, nginx in front of them.

python3 dev.py stack up                 # on 127.0.0.1: this machine only, no logins
python3 dev.py stack up --host ADDRESS  # for a team: TLS, logins and roles
python3 dev.py stack user add NAME --role reader|writer    # (and remove, list)
python3 dev.py stack env [--user NAME]  # export lines: eval "$(python3 dev.py stack env)"
python3 dev.py stack env --client FOLDER  # on a member's machine, in their checkout
python3 dev.py stack status             # what runs where
python3 dev.py stack down               # stop exactly the processes `up` started

Its state, secrets and logs are in .stack/ (or --dir), readable by their owner only. Run as
root, PostgreSQL runs as the postgres account, with its cluster in ~postgres/mnist-ae-stacks/
(or $MNIST_AE_PG_CLUSTERS). More: docs/team-stack.md.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

from mnist_ae.plumbing.cli import run_stage
from mnist_ae.plumbing.repo import repo_root
from mnist_ae.stack import control
from mnist_ae.stack.clients import client_env, dvc_settings, write_client_folder
from mnist_ae.stack.layout import DVC_BUCKET, MLFLOW_BUCKET, ROLES, Layout
from mnist_ae.stack.processes import StackError
from mnist_ae.stack.tls import ServerTLS


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="dev.py stack",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dir", type=Path, help="state folder (default: .stack/ in the repository)"
    )
    commands = top.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start what is not running", parents=[common])
    up.add_argument("--port-base", type=int, help="first of the eleven ports (default 15000)")
    up.add_argument(
        "--host", help="address the team's machines reach (default 127.0.0.1: this machine only)"
    )
    up.add_argument(
        "--workers",
        type=positive_count,
        help="MLflow server processes (default 2, for a team; 1 for one person)",
    )
    up.add_argument("--cert", type=Path, help="your own certificate for --host (PEM)")
    up.add_argument("--key", type=Path, help="its private key (PEM)")
    up.add_argument("--ca", type=Path, help="what clients trust for it (default: the certificate)")
    env = commands.add_parser(
        "env", help="shell lines for `eval` that point a shell at it", parents=[common]
    )
    who = env.add_mutually_exclusive_group()
    who.add_argument("--user", help="a team member's files, in .stack/clients/NAME/")
    who.add_argument("--client", type=Path, help="a copied .stack/clients/NAME/ folder")
    commands.add_parser("status", help="what runs where", parents=[common])
    down = commands.add_parser(
        "down", help="stop exactly the processes `up` started", parents=[common]
    )
    down.add_argument(
        "--delete", action="store_true", help="then delete its data, secrets and users for good"
    )
    user = commands.add_parser(
        "user", help="the team's logins (a stack on --host)", parents=[common]
    )
    user.add_argument("action", choices=("add", "remove", "list"))
    user.add_argument("name", nargs="?")
    user.add_argument("--role", choices=ROLES, default="reader")
    return top


def positive_count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 16:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to 16")
    return int(text)


def own_certificate(args: argparse.Namespace) -> ServerTLS | None:
    if args.cert is None and args.key is None:
        return None
    if args.cert is None or args.key is None or args.host is None:
        raise StackError("--cert and --key go together, with --host")
    for path in (args.cert, args.key, args.ca):
        if path is not None and not path.is_file():
            raise StackError(f"{path}: no such file")
    return ServerTLS(args.cert, args.key, args.ca or args.cert)


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    os.umask(0o077)  # everything the stack writes is its owner's alone
    layout = Layout((args.dir or control.default_dir(repo_root())).resolve())
    if args.command == "up":
        began = time.monotonic()
        started = control.up(layout, args.port_base, args.host, own_certificate(args), args.workers)
        took = f" in {time.monotonic() - began:.1f} s" if started else " (already running)"
        print(
            f"stack up{took}: MLflow {layout.url('mlflow')}, S3 {layout.url('s3')} "
            f"(buckets {MLFLOW_BUCKET}, {DVC_BUCKET}); state in {layout.root}"
        )
        if layout.networked():
            print("add the team: python3 dev.py stack user add NAME --role reader|writer")
        else:
            print('use it from a shell: eval "$(python3 dev.py stack env)"')
    elif args.command == "env":
        if args.client is not None:
            lines = client_env(args.client, repo_root())
        elif not layout.exists():
            raise StackError(f"no stack in {layout.root}: start one with `dev.py stack up`")
        elif args.user is not None:
            folder = write_client_folder(layout, args.user)
            lines = client_env(folder, None)  # the operator's own checkout stays as it is
            print(
                f"a checkout's DVC remote: python3 dev.py stack env --client {folder}, run in it",
                file=sys.stderr,
            )
        elif layout.networked():
            raise StackError("this stack has logins: `stack env --user NAME` (see `stack user`)")
        else:
            dvc_settings(repo_root(), layout.url("s3"), None, layout.aws_credentials)
            lines = [f"export {k}={shlex.quote(v)}" for k, v in layout.client_env().items()]
        print("\n".join(lines))
    elif args.command == "status":
        if not layout.exists():
            print(f"no stack in {layout.root}")
            return
        for name, state, address in control.status(layout):
            print(f"{name:10s} {address:21s} {state}")
    elif args.command == "user":
        if args.action == "list":
            for user in layout.users().values():
                print(f"{user.name:20s} {user.role}")
            return
        if not args.name:
            raise StackError(f"stack user {args.action} needs a NAME")
        if args.action == "add":
            user = control.add_user(layout, args.name, args.role)
            print(
                f"user {user.name} ({user.role}) added; their files: "
                f"python3 dev.py stack env --user {user.name}"
            )
        else:
            control.remove_user(layout, args.name)
            print(f"user {args.name} removed: no MLflow login, no S3 keys")
    else:
        stopped = control.down(layout, delete=args.delete)
        kept = "deleted" if args.delete else "kept in"
        print(f"stopped: {', '.join(stopped) or 'nothing was running'}; data {kept} {layout.root}")


if __name__ == "__main__":
    run_stage(lambda: main(sys.argv[1:]))
