"""Test helpers shared across modules: small data, the repository as a user's shell sees it, stage
commands exactly as dvc.yaml runs them, and checkouts ready for a stage."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import yaml

from mnist_ae.data.splits import Split, save_split
from mnist_ae.plumbing import repo
from mnist_ae.stack.control import free_port_base
from mnist_ae.stack.layout import Layout

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # this environment's python, dvc and mlflow
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@t",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@t",
}


def make_split(count: int, seed: int = 0) -> Split:
    """Random uint8 'digits' with every label 0-9 present, in a shuffled order."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(count) % 10).astype(np.uint8)
    images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
    return Split(images, labels)


def training_progress(epoch: int):
    """A Progress after `epoch` epochs whose weights all equal `epoch` (1 MiB of them)."""
    import torch

    from mnist_ae.model.progress import EpochResult, Progress, TrainResult

    history = [EpochResult(e, -e, -e - 0.5, 1.0) for e in range(1, epoch + 1)]
    weights = {"w": torch.full((512, 512), float(epoch))}
    result = TrainResult(history, epoch, -epoch - 0.5, 1.0 * epoch, 100 * epoch, weights)
    optimizer = {"state": {}, "param_groups": []}
    generator = torch.Generator().manual_seed(epoch).get_state()
    return Progress(epoch, weights, optimizer, None, generator, result)


_empty_store: Path | None = None


def empty_store(root: Path) -> None:
    """`root/mlflow.db`: an MLflow SQLite store without runs, copied from one MLflow created once
    per test process (creating the tables runs every schema migration, about a second each
    time). Stages that find no store still create one: test_sweep_queue.py and
    test_anomaly_stages.py."""
    global _empty_store
    if _empty_store is None:
        from mlflow.tracking import MlflowClient

        folder = Path(tempfile.mkdtemp(prefix="empty-mlflow-store-"))
        atexit.register(shutil.rmtree, folder, True)
        MlflowClient(f"sqlite:///{folder / 'mlflow.db'}").search_experiments()  # creates it
        _empty_store = folder / "mlflow.db"
    shutil.copyfile(_empty_store, Path(root) / "mlflow.db")


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without the caller's MLflow, DVC or AWS settings (stages use the
    checkout's SQLite store unless a test points them elsewhere), with this environment's
    `python` and `dvc` first on PATH and a git identity."""
    kept = ("DVC_SITE_CACHE_DIR",)  # the test run's own (conftest.FRESH_PLACES)
    env = {
        k: v
        for k, v in os.environ.items()
        if k in kept or not k.startswith(("MLFLOW_", "DVC_", "AWS_"))
    }
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    env["DVC_NO_ANALYTICS"] = "1"  # DVC's usage reports would leave loopback (and cost a process)
    return env | GIT_IDENTITY | extra


def run(
    args: list[str],
    cwd: Path,
    env: dict[str, str] | None = None,
    ok: bool = True,
    timeout=900,
    **options,
) -> subprocess.CompletedProcess:
    """A command as a user runs it; with `ok`, it must succeed (its output shown if not)."""
    done = subprocess.run(
        args,
        cwd=cwd,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        **options,
    )
    if ok:
        assert done.returncode == 0, f"{args}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def stage_command(stage: str) -> list[str]:
    """A stage's command exactly as dvc.yaml runs it, with this environment's python."""
    pipeline = yaml.safe_load((REPO / "dvc.yaml").read_text())
    program, script, *args = shlex.split(pipeline["stages"][stage]["cmd"])
    assert program == "python"
    return [sys.executable, str(REPO / script), *args]


def run_stage(stage: str, root: Path, env: dict[str, str] | None = None, **options):
    """Run one stage's command in a checkout; returns the finished process."""
    return subprocess.run(
        stage_command(stage),
        cwd=root,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=options.pop("timeout", 300),
        **options,
    )


def stage_checkout(root, train_images: int, **train) -> Path:
    """A repository ready for the train stage: params.yaml with `train` overrides, clean and
    noisy splits (`train_images` training, 200 validation and test images), add-noise's figure."""
    from PIL import Image

    root = Path(root)
    root.mkdir(parents=True)
    (root / "dvc.yaml").write_text("stages: {}\n")  # marks the repository root
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"] |= train
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    for folder in ("processed", "noisy"):
        (root / "data" / folder).mkdir(parents=True)
    for name, count in (("train", train_images), ("val", 200), ("test", 200)):
        clean = make_split(count, seed=count + len(name))
        save_split(root / "data" / "processed" / f"{name}.npz", clean)
        noise = np.random.default_rng(count).integers(-60, 60, clean.images.shape)
        noisy = np.clip(clean.images + noise, 0, 255).astype(np.uint8)
        save_split(root / "data" / "noisy" / f"{name}.npz", Split(noisy, clean.labels))
    empty_store(root)
    figure = root / "reports" / "add_noise" / "examples.png"
    figure.parent.mkdir(parents=True)
    Image.new("L", (28, 28)).save(figure)  # train logs add-noise's figure: any PNG will do
    return root


def copy_checkout(destination: Path) -> None:
    """What a clone of this repository has, with its uncommitted work."""
    repo.copy_checkout(REPO, destination)


def stack_command(
    directory: Path,
    *args: str,
    timeout: float = 180,
    env: dict[str, str] | None = None,
    cwd: Path = REPO,
) -> subprocess.CompletedProcess:
    """`dev.py stack ...` as a user runs it (through this environment's python), from a shell
    with the strictest usual umask, in the checkout `cwd` (`stack env` sets its DVC remote)."""
    command = [sys.executable, "-m", "mnist_ae.stack", *args, "--dir", str(directory)]
    return run(command, cwd, env=env, ok=False, timeout=timeout, umask=0o077)


def start_stack() -> Layout:
    """A real stack (one MLflow worker) in a new folder of /tmp, on free loopback ports."""
    layout = Layout(Path(tempfile.mkdtemp(prefix="mnist-ae-stack-", dir="/tmp")) / ".stack")
    # one MLflow worker: a second would cost 3 s of CPU at each start (the team test runs two)
    started = stack_command(
        layout.root, "up", "--port-base", str(free_port_base()), "--workers", "1"
    )
    if started.returncode != 0:
        stop_stack(layout)
        raise AssertionError(f"stack up failed:\n{started.stdout}{started.stderr}")
    return layout


def stop_stack(layout: Layout) -> None:
    """`stack down --delete`, then whatever it left stopped by the process ids the stack
    recorded when it started them, and its folder removed."""
    stopped = stack_command(layout.root, "down", "--delete")  # the cluster root keeps outside too
    for process in layout.started().values():  # if `down` itself failed
        process.stop()
    shutil.rmtree(layout.root.parent, ignore_errors=True)
    assert stopped.returncode == 0, stopped.stderr


@contextlib.contextmanager
def running_stack() -> Iterator[Layout]:
    """A stack of one's own, stopped whatever happened."""
    layout = start_stack()
    try:
        yield layout
    finally:
        stop_stack(layout)


# Another account's Python on the server host: every internal SeaweedFS port tried over plain
# HTTP and over TLS without a client certificate (it cannot read the stack's), with the requests
# that would hand out write tokens or delete a bucket.
OTHER_ACCOUNT = """
import json, ssl, sys, urllib.error, urllib.request
found = {}
for name, port in json.loads(sys.argv[1]).items():
    for scheme in ("http", "https"):
        for path in ("/dir/assign", "/col/delete?collection=mnist-ae-dvc", "/status"):
            context = ssl._create_unverified_context() if scheme == "https" else None
            try:
                url = f"{scheme}://127.0.0.1:{port}{path}"
                with urllib.request.urlopen(url, timeout=5, context=context) as answer:
                    found[f"{name} {scheme} {path}"] = answer.status
            except urllib.error.HTTPError as error:
                found[f"{name} {scheme} {path}"] = error.code
            except OSError as error:
                found[f"{name} {scheme} {path}"] = type(getattr(error, "reason", error)).__name__
print(json.dumps(found))
"""


def assert_internal_ports_refuse_another_account(layout: Layout, wrap: list[str]) -> None:
    """An account made for the purpose (and removed) tries every internal SeaweedFS port of the
    stack `layout`, run through `wrap` (a network namespace's `ip netns exec NAME`): plain HTTP
    gets Go's 400 for a TLS port, and nothing gets further."""
    from mnist_ae.stack.seaweedfs import INTERNAL_PORTS

    account = f"mnae-other-{os.getpid()}"
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    account], check=True, capture_output=True, timeout=30)  # fmt: skip
    try:
        ports = {name: layout.ports()[name] for name in INTERNAL_PORTS}
        tried = subprocess.run(
            [*wrap, "runuser", "-u", account, "--", "/usr/bin/python3", "-c", OTHER_ACCOUNT,
             json.dumps(ports)],
            capture_output=True, text=True, timeout=120, cwd="/",
        )  # fmt: skip
        assert tried.returncode == 0, tried.stderr
        found = json.loads(tried.stdout)
    finally:
        subprocess.run(["userdel", account], capture_output=True, timeout=30)
    assert len(found) == len(INTERNAL_PORTS) * 6
    answered = {what: status for what, status in found.items() if isinstance(status, int)}
    assert all(status == 400 for status in answered.values()), answered
    assert all(" http " in what for what in answered), answered
