"""The HTTP app `python -m mnist_ae.serve` runs on a checked copy of a version: POST /invocations,
GET /ping and /health, as MLflow's scoring server has them, with a strict input contract.

A request is `{"inputs": N x 1 x 28 x 28 numbers in [0, 1]}` with 1 <= N <= MAX_BATCH, in a
body of at most MAX_BODY bytes; the answer is `{"predictions": the denoised images, the same
shape, "scores": N not-a-digit scores, "is_digit": N booleans, "threshold": the version's}`
(analysis.not_a_digit: the calibration each version carries). Anything else
gets HTTP 400 with a one-line reason naming the problem: a body too large (refused before it is
parsed, and before more than MAX_BODY bytes of it are read), one that is not JSON, a value that
is not a number, NaN or infinity, a value outside [0, 1], a wrong shape, too many images.
"""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations (Request) as
# objects, and they are imported inside create_app.
import asyncio
import json
import os
from typing import Any

import numpy as np

from mnist_ae.analysis import not_a_digit
from mnist_ae.analysis.not_a_digit import Calibration

MAX_BATCH = 1024
# A batch of MAX_BATCH images written as JSON floats with 8 significant digits is about 9 MB
MAX_BODY = 16 * 1024 * 1024
DRAIN = 4 * MAX_BODY  # what of a refused body is still read (and dropped) before answering
MODEL_SETTING = "MNIST_AE_SERVED_MODEL"  # the checked copy serve.py hands to the app
SHAPE = (1, 28, 28)


class ContractError(ValueError):
    """A request outside the input contract; the message is the reason the client gets."""


def checked_inputs(payload: Any) -> np.ndarray:
    """The request's images as a float32 N x 1 x 28 x 28 array, or a ContractError."""
    if not isinstance(payload, dict) or set(payload) != {"inputs"}:
        raise ContractError('the body must be a JSON object {"inputs": N x 1 x 28 x 28 numbers}')
    try:
        values = np.asarray(payload["inputs"])
    except ValueError:
        raise ContractError("inputs: not a rectangular N x 1 x 28 x 28 array") from None
    if values.dtype.kind not in "fiu":
        raise ContractError(f"inputs: every value must be a number (found {values.dtype.name})")
    if values.ndim != 4 or values.shape[1:] != SHAPE:
        raise ContractError(f"inputs: shape {values.shape}, not N x 1 x 28 x 28")
    if not 1 <= len(values) <= MAX_BATCH:
        raise ContractError(f"inputs: {len(values)} images; a request holds 1 to {MAX_BATCH}")
    if not np.isfinite(values).all():
        image = int(np.flatnonzero(~np.isfinite(values).reshape(len(values), -1).all(1))[0])
        raise ContractError(f"inputs: NaN or infinity in image {image}")
    low, high = float(values.min()), float(values.max())
    if low < 0 or high > 1:
        raise ContractError(f"inputs: values must be in [0, 1] (found {low:g} to {high:g})")
    return values.astype(np.float32, copy=False)


def answer(inputs: np.ndarray, outputs: np.ndarray, calibration: Calibration) -> str:
    """The JSON answer: the denoised images, and each one's score and verdict."""
    scores = calibration.scores(inputs, outputs)
    return json.dumps(
        {
            "predictions": outputs.tolist(),
            "scores": [round(float(score), 6) for score in scores],
            "is_digit": calibration.is_digit(scores).tolist(),
            "threshold": calibration.threshold,
        }
    )


def create_app(model_path: str):
    """The app for the model in `model_path` (already checked: serve.py verified it)."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response

    from mnist_ae.tracking import registry

    model = registry.load_copy(model_path)
    calibration = not_a_digit.of_model(model, model_path)
    app = FastAPI()

    def refused(reason: str) -> JSONResponse:
        return JSONResponse({"error_code": "BAD_REQUEST", "message": reason}, status_code=400)

    @app.get("/ping")
    @app.get("/health")
    async def ping() -> Response:
        return Response("\n", media_type="application/json")

    async def too_large(request: Request, why: str, received: int) -> JSONResponse:
        """Refused unparsed. The rest of the body is read and dropped (up to DRAIN bytes) so
        that a client that sends it all before reading, as most do, gets the reason rather
        than a reset connection."""
        async for chunk in request.stream():
            received += len(chunk)
            if received > DRAIN:
                break
        answer = refused(why)
        answer.headers["Connection"] = "close"
        return answer

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
            why = f"a body of {declared} bytes; a request holds at most {MAX_BODY}"
            return await too_large(request, why, 0)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                why = f"a body of more than {MAX_BODY} bytes; a request holds at most that"
                return await too_large(request, why, len(body))
        try:
            inputs = checked_inputs(json.loads(body))
        except ContractError as error:
            return refused(str(error))
        except (ValueError, UnicodeDecodeError):
            return refused("the body is not JSON")
        outputs = np.asarray(await asyncio.to_thread(model.predict, inputs))
        return Response(answer(inputs, outputs, calibration), media_type="application/json")

    return app


def from_environment():
    """uvicorn's factory (`--factory mnist_ae.serve_app:from_environment`)."""
    return create_app(os.environ[MODEL_SETTING])
