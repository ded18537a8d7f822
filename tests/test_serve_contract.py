"""The served model's input contract, as its app checks a parsed request (the end-to-end test
sends the same over real HTTP to the served champion)."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_ae.serve_app import MAX_BATCH, ContractError, checked_inputs


def images(n: int, value: float = 0.5) -> list:
    return np.full((n, 1, 28, 28), value).tolist()


def test_a_batch_in_the_contract_comes_back_as_float32():
    checked = checked_inputs({"inputs": images(3)})
    assert checked.dtype == np.float32 and checked.shape == (3, 1, 28, 28)
    assert checked_inputs({"inputs": np.zeros((1, 1, 28, 28), int).tolist()}).max() == 0


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ([1, 2], 'the body must be a JSON object {"inputs"'),
        ({"inputs": images(1), "params": {}}, 'the body must be a JSON object {"inputs"'),
        ({"instances": images(1)}, 'the body must be a JSON object {"inputs"'),
        ({"inputs": np.full((1, 28, 28), 0.5).tolist()}, "inputs: shape (1, 28, 28), not N x"),
        ({"inputs": np.full((1, 3, 28, 28), 0.5).tolist()}, "inputs: shape (1, 3, 28, 28)"),
        ({"inputs": [[[[0.5] * 28] * 28], [[[0.5] * 27] * 28]]}, "inputs: not a rectangular"),
        ({"inputs": [[[["x"] * 28] * 28]]}, "inputs: every value must be a number (found str"),
        ({"inputs": [[[[None] * 28] * 28]]}, "inputs: every value must be a number (found object)"),
        ({"inputs": []}, "inputs: shape (0,), not N x 1 x 28 x 28"),
        ({"inputs": images(MAX_BATCH + 1, 0)}, f"inputs: {MAX_BATCH + 1} images; a request holds"),
        ({"inputs": images(2, float("nan"))}, "inputs: NaN or infinity in image 0"),
        ({"inputs": images(1, float("inf"))}, "inputs: NaN or infinity in image 0"),
        ({"inputs": images(1, 2.0)}, "inputs: values must be in [0, 1] (found 2 to 2)"),
        ({"inputs": images(1, -0.1)}, "inputs: values must be in [0, 1] (found -0.1 to -0.1)"),
    ],
)
def test_a_request_outside_the_contract_is_refused_with_its_reason(payload, reason):
    with pytest.raises(ContractError) as refused:
        checked_inputs(payload)
    assert str(refused.value).startswith(reason) and "\n" not in str(refused.value)
