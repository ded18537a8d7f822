"""The code stays ruff clean (lint and format), checked with the locked ruff."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUFF = [sys.executable, "-m", "ruff"]
CODE = ["src", "stages", "tests", "benchmarks", "dev.py"]


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]])
def test_ruff(command):
    paths = [p for p in CODE if (REPO / p).exists()]
    result = subprocess.run([*RUFF, *command, *paths], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
