"""Which code each DVC stage runs: its script and every mnist_ae module the script imports,
directly or not, found by reading the imports (nothing is run).

dvc.yaml lists exactly these files as each stage's code dependencies, so editing a module reruns
only the stages that import it. `python3 dev.py deps` rewrites those lists from the code, and the
pipeline contract test fails, naming that command, while they differ. The packages' `__init__`
files hold only docstrings (a test keeps them so), so they are left out of the lists.
"""

from __future__ import annotations

import ast
import re
import shlex
import sys
from pathlib import Path

import yaml

from mnist_ae.plumbing.repo import repo_root

PACKAGE = "mnist_ae"
_CODE = re.compile(r"^(\s+)- ((?:src|stages)/\S+\.py)\s*$")


def _module_path(module: str, root: Path) -> Path | None:
    """The file of a module of the package, or None if `module` names no module file."""
    base = root / "src" / Path(*module.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def imported_modules(path: Path, root: Path) -> set[str]:
    """The package's modules a file imports, anywhere in it (also inside functions). `from
    mnist_ae.x import y` counts as module `mnist_ae.x.y` when that is a module file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == PACKAGE:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if _module_path(candidate, root) else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
    return {module for module in found if _module_path(module, root)}


def code_closure(script: Path, root: Path) -> list[str]:
    """The script and every module file it imports, directly or not: sorted repository paths."""
    seen: set[str] = set()
    todo = list(imported_modules(script, root))
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(imported_modules(_module_path(module, root), root))
    files = {script.relative_to(root)} | {_module_path(m, root).relative_to(root) for m in seen}
    return sorted(str(path) for path in files)


def stage_scripts(root: Path) -> dict[str, Path]:
    """Each stage of dvc.yaml and the script its command runs."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    return {name: root / shlex.split(stage["cmd"])[1] for name, stage in stages.items()}


def rewritten(text: str, closures: dict[str, list[str]]) -> str:
    """dvc.yaml's text with each stage's run of code dependencies replaced by its closure (the
    rest of the file, comments included, stays as it is)."""
    lines, out, stage = text.splitlines(), [], None
    for i, line in enumerate(lines):
        header = re.match(r"^  ([a-z][\w-]*):\s*$", line)
        if header:
            stage = header.group(1)
        code = _CODE.match(line)
        if not code or stage not in closures:
            out.append(line)
            continue
        if i and _CODE.match(lines[i - 1]):
            continue  # one run per stage: written whole at its first line
        out.extend(f"{code.group(1)}- {path}" for path in closures[stage])
    return "\n".join(out) + "\n"


def expected_dvc_yaml(root: Path) -> str:
    closures = {name: code_closure(script, root) for name, script in stage_scripts(root).items()}
    return rewritten((root / "dvc.yaml").read_text(), closures)


def main() -> int:
    root = repo_root()
    current, expected = (root / "dvc.yaml").read_text(), expected_dvc_yaml(root)
    if current == expected:
        print("dvc.yaml: every stage's code dependencies are its imports already")
        return 0
    (root / "dvc.yaml").write_text(expected)
    print("dvc.yaml: code dependencies rewritten from the imports (review with git diff)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
