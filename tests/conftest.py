"""Shared fixtures: small synthetic MNIST-shaped data (the real data is only used end to end),
and one real team stack (PostgreSQL, SeaweedFS, MLflow server) for the service tests."""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from helpers import clean_env, make_split

from mnist_ae.stack.layout import PORT_OFFSETS, Layout

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def small_mnist() -> dict[str, np.ndarray]:
    """The four MNIST arrays in miniature: 200 train and 50 test images."""
    train, test = make_split(200, seed=1), make_split(50, seed=2)
    return {
        "train_images": train.images,
        "train_labels": train.labels,
        "test_images": test.images,
        "test_labels": test.labels,
    }


def free_port_base() -> int:
    """The first of ten consecutive free loopback ports (a user's own stack may use 15000)."""
    for _ in range(200):
        base = random.randrange(20000, 60000, 10)
        if all(_free(base + offset) for offset in PORT_OFFSETS.values()):
            return base
    raise RuntimeError("no ten consecutive free ports on 127.0.0.1")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def stack_command(directory: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """`dev.py stack ...` as a user runs it (through this environment's python)."""
    command = [sys.executable, "-m", "mnist_ae.stack", *args, "--dir", str(directory)]
    env = clean_env()
    return subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="session")
def stack():
    """A real stack in a temporary folder (/tmp: PostgreSQL's unprivileged account must reach
    it), stopped by the process ids it started, whatever the tests did."""
    root = Path(tempfile.mkdtemp(prefix="mnist-ae-stack-", dir="/tmp"))
    root.chmod(0o755)
    layout = Layout(root)
    started = stack_command(root, "up", "--port-base", str(free_port_base()))
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield layout
    finally:
        stopped = stack_command(root, "down")
        for process in layout.started().values():  # if `down` itself failed
            process.stop()
        assert stopped.returncode == 0, stopped.stderr
