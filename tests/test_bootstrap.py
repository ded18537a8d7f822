"""dev.py on a stock Debian or Ubuntu python3, which lacks ensurepip until python3-venv is
installed: it installs uv with the Python's own pip, or fails in one line naming the fix."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

SYSTEM_PATH = "/usr/bin:/bin"  # no uv of ours, no .venv


def without(modules: tuple[str, ...], folder: Path) -> Path:
    """A folder for PYTHONPATH in which importing each of `modules` fails as when it is absent."""
    folder.mkdir()
    for name in modules:
        (folder / f"{name}.py").write_text(f"raise ModuleNotFoundError('No module named {name}')\n")
    return folder


def dev_py(
    python: str, tmp_path: Path, hidden: Path, *args: str, wrapper: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    """dev.py alone in a fresh folder, run by `python` (through `wrapper`) with `hidden`'s
    modules unimportable."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "dev.py", project / "dev.py")
    env = {"PATH": SYSTEM_PATH, "HOME": str(tmp_path), "PYTHONPATH": str(hidden)}
    return subprocess.run(
        [*wrapper, python, "dev.py", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_without_ensurepip_or_pip_it_fails_in_one_line_naming_the_fix(tmp_path):
    hidden = without(("ensurepip", "pip"), tmp_path / "hidden")
    done = dev_py(sys.executable, tmp_path, hidden, "test", "--quick")
    assert done.returncode == 1 and done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: cannot install uv into ") and "neither ensurepip nor pip" in line
    assert "apt-get install python3-venv" in line and "pip install uv" in line
    assert not (tmp_path / "project" / ".tools").exists()  # nothing half-made


def system_python_with_pip() -> str | None:
    python = shutil.which("python3", path=SYSTEM_PATH)
    if python is None:
        return None
    has_pip = subprocess.run([python, "-c", "import pip"], capture_output=True).returncode == 0
    return python if has_pip else None


@pytest.mark.skipif(system_python_with_pip() is None, reason="no system python3 with pip here")
def test_without_ensurepip_it_installs_uv_with_pip(tmp_path):
    hidden = without(("ensurepip",), tmp_path / "hidden")
    done = dev_py(system_python_with_pip(), tmp_path, hidden, "deps")
    uv = tmp_path / "project" / ".tools" / "bin" / "uv"
    assert "uv was not on PATH: installed uv" in done.stderr, done.stderr
    assert uv.is_file()
    version = subprocess.run([str(uv), "--version"], capture_output=True, text=True)
    assert version.stdout.startswith("uv 0.")
    # It went on to sync, which needs the project: alone, dev.py has none.
    assert done.returncode != 0 and "pyproject.toml" in done.stderr


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="hiding PostgreSQL needs root and a mount namespace",
)
def test_the_suite_without_postgresql_says_what_to_install_before_anything_runs(tmp_path):
    """PostgreSQL hidden for real: an empty file system over its programs, in a mount namespace
    of this test's own."""
    hide = ("unshare", "--mount", "sh", "-c", 'mount -t tmpfs none /usr/lib/postgresql && "$@"')
    nothing_hidden = without((), tmp_path / "hidden")
    done = dev_py(sys.executable, tmp_path, nothing_hidden, "test", wrapper=(*hide, "sh"))
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "error: the test suite starts the team stack, which needs postgresql: apt-get install "
        "postgresql (as root, once), or run `python3 dev.py test --quick`"
    ]
    assert not (tmp_path / "project" / ".tools").exists()  # before uv, before any test
