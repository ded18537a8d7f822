"""Test helpers shared across modules."""

from __future__ import annotations

import numpy as np

from mnist_ae.datasets import Split


def make_split(count: int, seed: int = 0) -> Split:
    """Random uint8 'digits' with every label 0-9 present, in a shuffled order."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(count) % 10).astype(np.uint8)
    images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
    return Split(images, labels)


def training_progress(epoch: int):
    """A Progress after `epoch` epochs whose weights all equal `epoch` (1 MiB of them)."""
    import torch

    from mnist_ae.training import EpochResult, Progress, TrainResult

    history = [EpochResult(e, -e, -e - 0.5, 1.0) for e in range(1, epoch + 1)]
    weights = {"w": torch.full((512, 512), float(epoch))}
    result = TrainResult(history, epoch, -epoch - 0.5, 1.0 * epoch, 100 * epoch, weights)
    optimizer = {"state": {}, "param_groups": []}
    generator = torch.Generator().manual_seed(epoch).get_state()
    return Progress(epoch, weights, optimizer, None, generator, result)


def stage_command(stage: str) -> list[str]:
    """A stage's command exactly as dvc.yaml runs it, with this environment's python."""
    import shlex
    import sys
    from pathlib import Path

    import yaml

    repo = Path(__file__).resolve().parents[1]
    pipeline = yaml.safe_load((repo / "dvc.yaml").read_text())
    program, script, *args = shlex.split(pipeline["stages"][stage]["cmd"])
    assert program == "python"
    return [sys.executable, str(repo / script), *args]


def stage_checkout(root, train_images: int, **train):
    """A repository ready for the train stage: params.yaml with `train` overrides, clean and
    noisy splits (`train_images` training, 200 validation and test images), add-noise's figure."""
    from pathlib import Path

    import yaml
    from PIL import Image

    from mnist_ae.datasets import save_split

    repo = Path(__file__).resolve().parents[1]
    root = Path(root)
    root.mkdir(parents=True)
    (root / "dvc.yaml").write_text("stages: {}\n")  # marks the repository root
    params = yaml.safe_load((repo / "params.yaml").read_text())
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
    figure = root / "reports" / "add_noise" / "examples.png"
    figure.parent.mkdir(parents=True)
    Image.new("L", (28, 28)).save(figure)  # train logs add-noise's figure: any PNG will do
    return root


def clean_env() -> dict[str, str]:
    """This environment without the caller's MLflow, DVC or AWS settings: stages use the
    checkout's SQLite store unless a test points them elsewhere."""
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "AWS_"))}
