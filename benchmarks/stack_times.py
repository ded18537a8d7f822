"""How long `stack up` and `stack down` take, on 127.0.0.1 and on a network address.

    python benchmarks/stack_times.py --out docs/results/stack-times.json
    python benchmarks/stack_times.py --host 127.0.0.2 --rounds 3

For each address: a first `up` (a new stack folder: secrets, PostgreSQL's cluster, the buckets,
on a network address also the certificate authority and MLflow's users), `down`, then `rounds`
times a later `up` and `down` of the same stack, each command timed as a user runs it (a new
`python -m mnist_ae.stack` process). The stack runs MLflow's default two workers, on free
loopback ports, in a folder of its own that `down --delete` removes at the end. Writes the
medians and every run to `--out`, with the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import machine

from mnist_ae.stack.control import free_port_base


def timed(folder: Path, *args: str) -> float:
    command = [sys.executable, "-m", "mnist_ae.stack", *args, "--dir", str(folder)]
    began = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, text=True)
    return time.perf_counter() - began


def measure(host: str, rounds: int) -> dict:
    home = Path(tempfile.mkdtemp(prefix="mnist-ae-stack-", dir="/tmp"))
    folder = home / ".stack"
    up = ["up", "--port-base", str(free_port_base()), "--host", host]
    try:
        first_up, first_down = timed(folder, *up), timed(folder, "down")
        later = [(timed(folder, "up"), timed(folder, "down")) for _ in range(rounds)]
    finally:
        subprocess.run(
            [sys.executable, "-m", "mnist_ae.stack", "down", "--delete", "--dir", str(folder)],
            capture_output=True,
        )
        home.rmdir()
    return {
        "first_up_s": round(first_up, 1),
        "later_up_s": round(statistics.median(u for u, _ in later), 1),
        "down_s": round(statistics.median([first_down, *(d for _, d in later)]), 1),
        "runs": {"first": [first_up, first_down], "later": later},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", nargs="+", default=["127.0.0.1", "127.0.0.2"])
    parser.add_argument("--rounds", type=int, default=3, help="later up/down pairs per address")
    parser.add_argument("--out", type=Path, default=Path("stack-times.json"))
    args = parser.parse_args()
    results = {host: measure(host, args.rounds) for host in args.hosts}
    summary = {"machine": machine(), "stacks": results}
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    for host, found in results.items():
        print(f"{host}: first up {found['first_up_s']} s, later up {found['later_up_s']} s, "
              f"down {found['down_s']} s")  # fmt: skip


if __name__ == "__main__":
    main()
