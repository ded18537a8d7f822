"""Shared fixtures: small synthetic MNIST-shaped data (the real data is only used end to end),
and one real team stack (PostgreSQL, SeaweedFS, MLflow server) for the service tests."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from helpers import make_split, start_stack, stop_stack

from mnist_ae.stack.layout import Layout
from mnist_ae.stack.postgres import CLUSTERS_SETTING

# Three test workers on two cores (the tests wait for servers and subprocesses about a quarter
# of the time; measured: 2 workers 7:20, 3 workers 6:58, 4 workers 7:16), one thread each, in
# the worker and every process it starts (trainings, stages, queued experiments): more threads
# than cores and OpenMP spends the difference spinning.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["DVC_NO_ANALYTICS"] = "1"  # tests send traffic to loopback only


# What the project (and the libraries it drives) writes outside the checkout, each pointed into
# one new folder per test run (docs/cleanup.md lists where it goes otherwise).
FRESH_PLACES = {
    CLUSTERS_SETTING: "postgresql/mnist-ae-stacks",  # a root stack's PostgreSQL clusters
    "TMPDIR": "tmp",  # MLflow's lock files, torch's compile cache, temporary copies
    "MNIST_AE_CACHE_DIR": "mnist-ae",  # the PyPI source's MNIST wheel
    "MPLCONFIGDIR": "matplotlib",  # matplotlib's font cache
    "DVC_SITE_CACHE_DIR": "dvc",  # DVC's per-repository state (/var/tmp/dvc)
}


def pytest_configure(config: pytest.Config) -> None:
    """The suite starts from a fresh machine's state: everything it writes outside the checkout
    goes to a new folder (standing for /var/lib, /tmp and ~/.cache) of which no level below
    exists yet, so that no test leans on what an earlier run left behind; a root stack must
    make its clusters' folders there from nothing. The test workers inherit it; it goes when
    the run ends."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    fresh = Path(tempfile.mkdtemp(prefix="mnist-ae-fresh-", dir="/tmp"))
    fresh.chmod(0o755)  # as /var/lib is: every account may pass through
    for variable, place in FRESH_PLACES.items():
        os.environ[variable] = str(fresh / place)
    (fresh / "tmp").mkdir(mode=0o700)  # the one a program expects to exist
    config.add_cleanup(lambda: shutil.rmtree(fresh, ignore_errors=True))


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
def stack(tmp_path_factory):
    """One real stack for the whole run, shared by the test workers (a start costs about 10 s of
    CPU): the first worker that needs it starts it; the last one to finish stops it by the
    process ids the stack recorded, whatever the tests did. Tests that stop a component of the
    stack use one of their own (helpers.running_stack)."""
    run_folder = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        run_folder = run_folder.parent  # this run's folder, which holds each worker's
    users = run_folder / "stack-users.json"
    with _locked(run_folder / "stack.lock"):
        shared = json.loads(users.read_text()) if users.exists() else {"root": "", "users": 0}
        if shared["users"] == 0:
            shared["root"] = str(start_stack().root)
        shared["users"] += 1
        users.write_text(json.dumps(shared))
    layout = Layout(Path(shared["root"]))
    try:
        yield layout
    finally:
        with _locked(run_folder / "stack.lock"):
            shared = json.loads(users.read_text())
            shared["users"] -= 1
            users.write_text(json.dumps(shared))
            if shared["users"] == 0:
                stop_stack(layout)


@contextlib.contextmanager
def _locked(path: Path):
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


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
