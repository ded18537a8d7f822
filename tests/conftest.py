"""Shared fixtures: small synthetic MNIST-shaped data (the real data is only used end to end),
and one real team stack (PostgreSQL, SeaweedFS, MLflow server) for the service tests."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from helpers import free_port_base, make_split, stack_command

from mnist_ae.stack.layout import Layout

# Three test workers on two cores (the tests wait for servers and subprocesses about a quarter
# of the time; measured: 2 workers 7:20, 3 workers 6:58, 4 workers 7:16), one thread each, in
# the worker and every process it starts (trainings, stages, queued experiments): more threads
# than cores and OpenMP spends the difference spinning.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["DVC_NO_ANALYTICS"] = "1"  # tests send traffic to loopback only


# The longest files first, so that the workers finish together: pytest-xdist hands out whole
# files (--dist loadfile) in collection order.
LONGEST_FIRST = (  # measured: from 280 s down to 7 s
    "test_e2e.py",
    "test_sweep_queue.py",
    "test_team_network.py",
    "test_outage.py",
    "test_faults.py",
    "test_champion.py",
    "test_kill.py",
    "test_stack.py",
    "test_training.py",
    "test_benchmark.py",
    "test_tracking.py",
    "test_anomaly_stages.py",
    "test_checkpoints.py",
    "test_unpickling.py",
    "test_download_stage.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: files stay whole


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


@pytest.fixture(scope="session")
def stack():
    """A real stack in a temporary folder, stopped by the process ids it started, whatever the
    tests did."""
    root = Path(tempfile.mkdtemp(prefix="mnist-ae-stack-", dir="/tmp")) / ".stack"
    layout = Layout(root)
    # one MLflow worker: a second would cost 3 s of CPU at each start (the team test runs two)
    started = stack_command(root, "up", "--port-base", str(free_port_base()), "--workers", "1")
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield layout
    finally:
        stopped = stack_command(root, "down", "--delete")  # the cluster root keeps outside too
        for process in layout.started().values():  # if `down` itself failed
            process.stop()
        shutil.rmtree(root.parent, ignore_errors=True)
        assert stopped.returncode == 0, stopped.stderr


def pytest_xdist_make_scheduler(config, log):
    """xdist's file scheduling, but a worker is handed its next file only when the last test of
    its current one is under way (xdist's default takes the next file with two tests still to
    run, which can queue a long file behind another while a worker goes idle)."""
    from xdist.scheduler import LoadFileScheduling

    class OneFileAhead(LoadFileScheduling):
        def _reschedule(self, node) -> None:
            if node.shutting_down:
                return
            if not self.workqueue:
                node.shutdown()
                return
            if self._pending_of(self.assigned_work[node]) > 1:
                return
            self._assign_work_unit(node)

    return OneFileAhead(config, log)
