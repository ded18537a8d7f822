import os
import pickle

import numpy as np
import pytest

from mnist_ae.data.unpickling import UnsafePickleError, safe_loads


def test_numpy_arrays_in_tuples_load():
    data = ((np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2], dtype=np.int64)),)
    loaded = safe_loads(pickle.dumps(data, protocol=4))
    assert np.array_equal(loaded[0][0], data[0][0]) and loaded[0][0].dtype == np.float32
    assert np.array_equal(loaded[0][1], data[0][1])


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize(
    "payload",
    [
        pickle.dumps(_Exploit(), protocol=2),
        pickle.dumps((np.zeros(2), _Exploit()), protocol=4),
        b"cbuiltins\neval\n(S'1+1'\ntR.",  # a hand-written GLOBAL opcode
        b"cnumpy\nload\n(S'x'\ntR.",  # numpy, but not array reconstruction
    ],
)
def test_any_other_global_is_refused(payload):
    with pytest.raises(UnsafePickleError, match="refusing to unpickle global"):
        safe_loads(payload)
