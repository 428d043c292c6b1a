"""The one place where domain errors become HTTP responses.

Handlers and the engine raise :mod:`decisioning.errors`; this handler maps them:
``InvalidInput`` (``HistoryError``, ``SegmentError``) and ``LearningError`` -> 422 with the
message, ``NotFound`` -> 404, ``Conflict`` -> 409. The body is ``{"detail": message}``, the
shape FastAPI uses for its own errors. FastAPI's own 422 for an invalid body is kept, made
safe to render when the input held numbers JSON cannot carry (``NaN``, ``Infinity``).
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from decisioning.errors import Conflict, DecisioningError, InvalidInput, LearningError, NotFound

STATUS: tuple[tuple[type[DecisioningError], int], ...] = (
    (NotFound, status.HTTP_404_NOT_FOUND),
    (Conflict, status.HTTP_409_CONFLICT),
    (InvalidInput, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (LearningError, status.HTTP_422_UNPROCESSABLE_CONTENT),
)


def status_of(error: DecisioningError) -> int:
    """The HTTP status of a domain error (422 for any other ``DecisioningError``)."""
    for kind, code in STATUS:
        if isinstance(error, kind):
            return code
    return status.HTTP_422_UNPROCESSABLE_CONTENT


async def domain_error(request: Request, exc: Exception) -> JSONResponse:
    """Map a domain error to its status, with its message as the detail."""
    assert isinstance(exc, DecisioningError)
    return JSONResponse({"detail": str(exc)}, status_code=status_of(exc))


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities spelled as strings (JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 body (one entry per wrong field), safe for inputs such as ``NaN``."""
    assert isinstance(exc, RequestValidationError)
    detail = _finite(jsonable_encoder(exc.errors()))
    return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


def install(app: FastAPI) -> None:
    """Register the domain-error and request-validation handlers on ``app``."""
    app.add_exception_handler(DecisioningError, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)
