"""The IDX file format MNIST ships in (big-endian header, then raw uint8 values), and the one
reader of a folder of the four MNIST files."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from mnist_ae.plumbing.errors import PipelineError

_UINT8 = 0x08

# The four arrays of MNIST, by the file names of the original distribution.
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


class IdxError(PipelineError, ValueError):
    """An IDX file is malformed; the message names the file."""


def encode_idx(array: np.ndarray) -> bytes:
    """Serialise a uint8 array as IDX bytes (magic 0x0000080N, N = number of dimensions)."""
    if array.dtype != np.uint8:
        raise TypeError(f"IDX encoding here supports uint8 only, got {array.dtype}")
    header = struct.pack(">BBBB", 0, 0, _UINT8, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array).tobytes()


def decode_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes into a uint8 array, checking the header against the payload size."""
    if len(data) < 4:
        raise IdxError(f"{name}: too short to be an IDX file ({len(data)} bytes)")
    zero1, zero2, dtype_code, ndim = struct.unpack(">BBBB", data[:4])
    if zero1 or zero2 or dtype_code != _UINT8 or not 1 <= ndim <= 4:
        raise IdxError(f"{name}: bad IDX magic number {data[:4].hex()} (expected 000008 + ndim)")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise IdxError(f"{name}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    expected = int(np.prod(shape))
    if len(data) - header_size != expected:
        raise IdxError(
            f"{name}: header says shape {shape} ({expected} bytes) "
            f"but the file holds {len(data) - header_size} bytes of data"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape).copy()


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file, gzipped (by its magic bytes) or not."""
    path = Path(path)
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise IdxError(f"{path}: corrupt gzip data: {exc}") from None
    return decode_idx(data, str(path))


def read_idx_folder(directory: str | Path) -> dict[str, np.ndarray]:
    """The four arrays of IDX_FILES from a folder, each file gzipped (`.gz`) or not."""
    directory = Path(directory)
    if not directory.is_dir():
        raise IdxError(f"{directory} is not a directory")
    arrays = {}
    for name, filename in IDX_FILES.items():
        found = next(
            (p for p in (directory / filename, directory / f"{filename}.gz") if p.is_file()), None
        )
        if found is None:
            raise IdxError(
                f"{directory / filename}: missing (neither it nor {filename}.gz is there)"
            )
        arrays[name] = read_idx(found)
    return arrays
