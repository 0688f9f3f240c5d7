"""Errors mapped once, at the edge: domain exceptions become Airflow's ``{"detail": ...}`` bodies.

The store and the routes raise ``LeoflowError`` subclasses; ``exception_handlers()`` gives
Starlette one handler per class and Starlette picks the nearest one along the MRO. Connection
failures of the datastores that escape the store unwrapped still become a clear 503.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from leoflow.errors import (
    CompileError,
    Conflict,
    Forbidden,
    LeoflowError,
    NotFound,
    ProjectError,
    SpecError,
    Unauthorized,
    Unavailable,
)
from leoflow.store.api import InvalidArgument

log = logging.getLogger("leoflow.server")


class BadRequest(LeoflowError):
    """The request is malformed (broken JSON, bad query parameter)."""


class UnprocessableEntity(LeoflowError):
    """The request body or parameters fail validation; ``errors`` lists them FastAPI-style."""

    def __init__(self, message: str, *, field: str | None = None, errors: list[Any] | None = None):
        super().__init__(message, field=field)
        self.errors = errors or [
            {"type": "value_error", "loc": ["body", *(field or "").split(".")], "msg": message}
        ]

    @classmethod
    def from_validation(cls, exc: ValidationError, where: str = "body") -> UnprocessableEntity:
        """From a pydantic error, keeping every location so the client sees each bad field."""
        errors = [
            {
                "type": e["type"],
                "loc": [where, *e["loc"]],
                "msg": e["msg"],
                "input": e.get("input") if _jsonable(e.get("input")) else None,
            }
            for e in exc.errors()
        ]
        first = ".".join(str(p) for p in exc.errors()[0]["loc"]) or where
        return cls(f"{first}: {exc.errors()[0]['msg']}", field=first, errors=errors)


class PayloadTooLarge(LeoflowError):
    """The request body is over the server's limit."""


class RateLimited(LeoflowError):
    """Too many attempts from this client; try again later."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _jsonable(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | list | dict)


_STATUS: list[tuple[type[LeoflowError], int]] = [
    (BadRequest, 400),
    (InvalidArgument, 400),
    (SpecError, 400),
    (ProjectError, 400),
    (CompileError, 400),
    (Unauthorized, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (PayloadTooLarge, 413),
    (UnprocessableEntity, 422),
    (RateLimited, 429),
    (Unavailable, 503),
]


def status_for(exc: LeoflowError) -> int:
    """The HTTP status of a domain error (nearest class in the table; 400 for the rest)."""
    for cls in type(exc).__mro__:
        for known, status in _STATUS:
            if cls is known:
                return status
    return 400


def error_response(status: int, detail: Any, headers: dict[str, str] | None = None) -> Response:
    """Airflow's error body."""
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


async def _leoflow_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LeoflowError)
    status = status_for(exc)
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, UnprocessableEntity):
        return error_response(status, exc.errors)
    if status == 503:
        log.warning("datastore unavailable on %s %s: %s", request.method, request.url.path, exc)
    return error_response(status, str(exc), headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return error_response(exc.status_code, exc.detail, dict(exc.headers or {}))


async def _datastore_down(request: Request, exc: Exception) -> Response:
    log.warning("datastore error on %s %s: %r", request.method, request.url.path, exc)
    return error_response(
        503,
        f"the metadata database or Redis is unreachable right now ({type(exc).__name__}); retry shortly",
    )


def _connection_errors() -> list[type[Exception]]:
    """Exception classes meaning "a datastore went away", whatever library raised them."""
    classes: list[type[Exception]] = [ConnectionError, OSError, TimeoutError]
    try:
        import asyncpg

        classes += [
            asyncpg.exceptions.ConnectionDoesNotExistError,
            asyncpg.exceptions.ConnectionFailureError,
            asyncpg.exceptions.CannotConnectNowError,
            asyncpg.exceptions.AdminShutdownError,
            asyncpg.exceptions.InterfaceError,
            asyncpg.exceptions.TooManyConnectionsError,
        ]
    except ImportError:  # pragma: no cover - asyncpg is a hard dependency
        pass
    try:
        import redis.exceptions

        classes += [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError]
    except ImportError:  # pragma: no cover
        pass
    return classes


def exception_handlers() -> dict[Any, Any]:
    """The handler table given to ``Starlette(exception_handlers=...)``."""
    handlers: dict[Any, Any] = {cls: _datastore_down for cls in _connection_errors()}
    handlers[LeoflowError] = _leoflow_error
    handlers[HTTPException] = _http_error
    return handlers
