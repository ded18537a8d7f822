"""Requests per second and latency of a served model, for batches of 1 and 256 digits.

    mlflow models serve -m models:/mnist-denoising-ae@champion --env-manager local \\
        -h 127.0.0.1 -p 5001 &
    python benchmarks/serving.py --url http://127.0.0.1:5001 --noisy data/noisy/test.npz

Sends `--requests` POST /invocations of each batch size one after another (one client, as a
user's script does) after a few warm-up requests, with real noisy test digits as
`{"inputs": N x 1 x 28 x 28 floats in [0, 1]}`, and reports requests and images per second and
the median and 95th-percentile latency. Needs only numpy.
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
    parser.add_argument("--url", default="http://127.0.0.1:5001")
    parser.add_argument("--noisy", default="data/noisy/test.npz", help="noisy test split")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 256])
    parser.add_argument("--requests", type=int, default=50, help="timed requests per batch size")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", type=Path, help="a JSON file for the figures and the machine")
    args = parser.parse_args()

    with np.load(args.noisy) as split:
        images = split["images"].astype(np.float32) / 255
    url = args.url.rstrip("/") + "/invocations"
    print("batch  requests/s  images/s  median ms  p95 ms")
    rows = []
    for batch in args.batches:
        body = json.dumps({"inputs": images[:batch, None].tolist()}).encode()
        for _ in range(args.warmup):
            post(url, body)
        latencies = []
        for _ in range(args.requests):
            began = time.perf_counter()
            assert post(url, body) == batch
            latencies.append(time.perf_counter() - began)
        total = sum(latencies)
        p95 = sorted(latencies)[int(0.95 * (len(latencies) - 1))]
        row = {
            "batch": batch,
            "requests_per_s": round(len(latencies) / total, 1),
            "images_per_s": round(batch * len(latencies) / total),
            "median_ms": round(statistics.median(latencies) * 1000, 1),
            "p95_ms": round(p95 * 1000, 1),
        }
        rows.append(row)
        print(f"{batch:5d}  {row['requests_per_s']:10.1f}  {row['images_per_s']:8.0f}"
              f"  {row['median_ms']:9.1f}  {row['p95_ms']:6.1f}")  # fmt: skip
    if args.out is not None:
        summary = {"machine": machine(), "requests": args.requests, "batches": rows}
        args.out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
