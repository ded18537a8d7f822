"""What every stage script shares: its argument parser and a clean exit on bad input, a full disk
or an interruption: one line on stderr, a non-zero status, no traceback."""

from __future__ import annotations

import argparse
import errno
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from mnist_ae.plumbing import signals
from mnist_ae.plumbing.errors import PipelineError

# Modules whose libraries raise their own exceptions (MLflow, SQLAlchemy) register a function
# that turns one into a PipelineError naming what failed, or returns None if it is not theirs.
Translator = Callable[[BaseException], PipelineError | None]
_translators: list[Translator] = []

_DISK_FULL = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for the file system or its size limit",
}


def register_translator(translate: Translator) -> None:
    if translate not in _translators:
        _translators.append(translate)


def stage_arguments(description: str | None, **paths: str) -> argparse.Namespace:
    """A stage's command line: `--params`, and for each keyword a required path option
    (`noise_figure` is `--noise-figure`) with the keyword's value as its help."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file")
    for name, help_text in paths.items():
        option = f"--{name.replace('_', '-')}"
        parser.add_argument(option, type=Path, required=True, help=help_text)
    return parser.parse_args()


def describe(error: BaseException) -> tuple[str, int] | None:
    """The one line and exit status for an error a user can act on, or None (a bug: traceback)."""
    if isinstance(error, signals.Interrupted):
        return f"{error}; {error.detail}", error.exit_status
    if isinstance(error, PipelineError):
        return str(error), 1
    if isinstance(error, OSError) and error.errno in _DISK_FULL:
        where = f" while writing {error.filename}" if error.filename else ""
        return f"{_DISK_FULL[error.errno]}{where}: free some space, then rerun the stage", 1
    for translate in _translators:
        translated = translate(error)
        if translated is not None:
            return str(translated), 1
    return None


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage; errors a user can act on become one line on stderr and a non-zero status."""
    signals.install()
    if hasattr(signal, "SIGXFSZ"):  # past a file-size limit a write raises EFBIG, not a kill
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        main()
    except BaseException as error:
        described = describe(error)
        if described is None:
            raise
        message, status = described
        print(f"error: {message}", file=sys.stderr)
        sys.exit(status)
