"""Where the main repository is, also from inside DVC's experiment copies."""

from __future__ import annotations

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
