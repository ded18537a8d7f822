import gzip

import numpy as np
import pytest

from mnist_ae.data.idx import IdxError, decode_idx, encode_idx, read_idx


@pytest.mark.parametrize("shape", [(5,), (3, 28, 28), (2, 4, 6)])
def test_round_trip(shape):
    array = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    decoded = decode_idx(encode_idx(array))
    assert decoded.dtype == np.uint8 and np.array_equal(decoded, array)


def test_header_layout_is_the_mnist_one():
    data = encode_idx(np.zeros((2, 28, 28), np.uint8))
    assert data[:4] == bytes([0, 0, 8, 3])  # uint8, 3 dimensions
    assert data[4:16] == (2).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2


def test_gzipped_and_plain_files_read_the_same(tmp_path):
    array = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
    (tmp_path / "plain").write_bytes(encode_idx(array))
    (tmp_path / "packed.gz").write_bytes(gzip.compress(encode_idx(array)))
    assert np.array_equal(read_idx(tmp_path / "plain"), read_idx(tmp_path / "packed.gz"))


def test_bad_files_are_named(tmp_path):
    good = encode_idx(np.zeros((2, 3), np.uint8))
    cases = {
        "magic": b"\x00\x00\x0d\x02" + good[4:],  # float dtype code
        "truncated": good[:-1],
        "short": b"\x00\x00",
        "gzip": b"\x1f\x8b" + b"garbage",
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(IdxError, match=name):
            read_idx(path)
