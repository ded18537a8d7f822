"""Unpickling downloaded bytes safely: numpy array reconstruction and nothing else."""

from __future__ import annotations

import io
import pickle
from typing import Any

import numpy as np

try:  # numpy >= 2 moved the implementation; old pickles still name numpy.core
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct

_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list."""


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to unpickle global {module}.{name}: "
                "only numpy array reconstruction is allowed"
            ) from None


def safe_loads(data: bytes) -> Any:
    """Load a pickle (Python 2 ones too) that may only rebuild numpy arrays, tuples and lists."""
    return _NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()
