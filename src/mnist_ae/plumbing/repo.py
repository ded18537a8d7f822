"""Where the main repository is, also from inside DVC's experiment copies."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def repo_root(start: Path | None = None) -> Path:
    """The main repository's root. `dvc exp run --queue` and `--temp` run stages in a copy under
    `.dvc/tmp/exps/` that lacks git-ignored files (the MLflow store, checkpoints, the stack)."""
    path = (start or Path.cwd()).resolve()
    parts = path.parts
    for i in range(len(parts) - 2):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    for candidate in (path, *path.parents):
        if (candidate / "dvc.yaml").is_file():
            return candidate
    return path


def copy_checkout(source: Path, destination: Path) -> None:
    """What a clone of `source` would hold, and its uncommitted work: the files git tracks, plus
    untracked ones it does not ignore (no data, no stores, no environment)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=source, capture_output=True, text=True, check=True,
    )  # fmt: skip
    for name in filter(None, listed.stdout.split("\0")):
        if (source / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, destination / name)
