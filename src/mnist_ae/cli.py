"""What every stage script shares: its argument parser and a clean exit on bad input."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from mnist_ae.errors import PipelineError


def stage_parser(description: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file")
    return parser


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage; a PipelineError becomes one line on stderr and exit status 1."""
    try:
        main()
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
