"""Requests per second and latency of served models, for batches of 1 and 256 digits.

    python -m mnist_ae.serve --port 5001 &
    python benchmarks/serving.py --url http://127.0.0.1:5001 --noisy data/noisy/test.npz

    # two servers of the same checked copy, measured in one run (label=url):
    python benchmarks/serving.py --url ours=http://127.0.0.1:5001 mlflow=http://127.0.0.1:5002

Sends `--requests` POST /invocations of each batch size one after another (one client, as a
user's script does) after a few warm-up requests, with real noisy test digits as
`{"inputs": N x 1 x 28 x 28 floats in [0, 1]}`, and reports requests and images per second and
the median and 95th-percentile latency. With several servers, their requests alternate in
rounds of a tenth of `--requests` each, so that a drift of the machine's speed is shared.
Needs only numpy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import urllib.request
from pathlib import Path

import numpy as np
from machine import machine


def post(url: str, body: bytes) -> int:
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as answer:
        return len(json.load(answer)["predictions"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url", nargs="+", default=["http://127.0.0.1:5001"], help="URL, or LABEL=URL each"
    )
    parser.add_argument("--noisy", default="data/noisy/test.npz", help="noisy test split")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 256])
    parser.add_argument("--requests", type=int, default=50, help="timed requests per batch size")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", type=Path, help="a JSON file for the figures and the machine")
    args = parser.parse_args()

    servers = dict(u.split("=", 1) if "=" in u else ("server", u) for u in args.url)
    with np.load(args.noisy) as split:
        images = split["images"].astype(np.float32) / 255
    print("server  batch  requests/s  images/s  median ms  p95 ms")
    rows = []
    for batch in args.batches:
        body = json.dumps({"inputs": images[:batch, None].tolist()}).encode()
        took: dict[str, list[float]] = {label: [] for label in servers}
        for url in servers.values():
            for _ in range(args.warmup):
                post(url.rstrip("/") + "/invocations", body)
        rounds = 10 if len(servers) > 1 else 1
        for _ in range(rounds):
            for label, url in servers.items():
                for _ in range(args.requests // rounds):
                    began = time.perf_counter()
                    assert post(url.rstrip("/") + "/invocations", body) == batch
                    took[label].append(time.perf_counter() - began)
        for label, latencies in took.items():
            total = sum(latencies)
            p95 = sorted(latencies)[int(0.95 * (len(latencies) - 1))]
            row = {
                "server": label,
                "batch": batch,
                "requests_per_s": round(len(latencies) / total, 1),
                "images_per_s": round(batch * len(latencies) / total),
                "median_ms": round(statistics.median(latencies) * 1000, 1),
                "p95_ms": round(p95 * 1000, 1),
            }
            rows.append(row)
            figures = [row[k] for k in ("requests_per_s", "images_per_s", "median_ms", "p95_ms")]
            print(f"{label:6s}  {batch:5d}  " + "  ".join(f"{f:9.1f}" for f in figures))
    if args.out is not None:
        summary = {"machine": machine(), "requests": args.requests, "servers": servers,
                   "batches": rows}  # fmt: skip
        args.out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
