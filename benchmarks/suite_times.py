"""How long the test suite takes: the quick tier, then the full suite, and the longest files.

    python benchmarks/suite_times.py --out docs/results/suite-times.json

Runs `pytest` as `python3 dev.py test --quick` and `python3 dev.py test` do, in this checkout,
each with a JUnit report, and writes their wall times, test counts and each file's time (its
tests' setup, call and teardown added up, as the worker that ran it spent them) with the
machine to `--out`. Every run starts from a fresh machine's state (tests/conftest.py), so the
compile cache is empty each time, as on CI.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections import defaultdict
from pathlib import Path

from machine import machine

REPO = Path(__file__).resolve().parents[1]
QUICK = "not (services or pipeline or stages)"  # dev.py's --quick


def run_suite(*options: str) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "junit.xml"
        began = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", f"--junitxml={report}", *options], cwd=REPO
        )
        wall = time.perf_counter() - began
        cases = ElementTree.parse(report).getroot().iter("testcase")
        files: dict[str, float] = defaultdict(float)
        count = 0
        for case in cases:
            count += 1
            parts = case.get("classname", "").split(".")  # tests.test_x[.Class]
            name = next((part for part in parts if part.startswith("test_")), parts[0])
            files[f"{name}.py"] += float(case.get("time", 0))
    if done.returncode != 0:
        raise SystemExit(f"pytest {options} failed: the times of a failing suite mean little")
    longest = sorted(files.items(), key=lambda item: -item[1])
    return {
        "wall_s": round(wall),
        "tests": count,
        "files_s": {name: round(seconds) for name, seconds in longest},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("suite-times.json"))
    args = parser.parse_args()
    quick = run_suite("-m", QUICK)
    full = run_suite()
    summary = {"machine": machine(), "quick": quick, "full": full}
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"quick tier: {quick['wall_s']} s, {quick['tests']} tests; "
          f"full suite: {full['wall_s']} s, {full['tests']} tests")  # fmt: skip


if __name__ == "__main__":
    main()
