"""Query-string parsing shared by the list routes: pagination, ordering, filters, dates.

Bad values are a 422 naming the parameter, as Airflow (FastAPI) answers them; an order_by on a
field the route does not sort by is a 400, as Airflow's ``SortParam`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from starlette.requests import Request

from leoflow.server.errors import BadRequest, UnprocessableEntity

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
WILDCARD = "~"


def _invalid(name: str, message: str, value: object) -> UnprocessableEntity:
    return UnprocessableEntity(
        f"{name}: {message}",
        field=name,
        errors=[{"type": "value_error", "loc": ["query", name], "msg": message, "input": value}],
    )


def int_param(request: Request, name: str, default: int, *, minimum: int = 0) -> int:
    """An integer query parameter (422 naming it when not an integer or below ``minimum``)."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _invalid(name, "Input should be a valid integer", raw) from None
    if value < minimum:
        raise _invalid(name, f"Input should be greater than or equal to {minimum}", raw)
    return value


@dataclass(frozen=True)
class Page:
    """limit/offset of a list request."""

    limit: int
    offset: int


def page(request: Request) -> Page:
    """``limit`` (default 50, clamped to 1000) and ``offset`` (default 0)."""
    limit = min(int_param(request, "limit", DEFAULT_LIMIT), MAX_LIMIT)
    return Page(limit=limit, offset=int_param(request, "offset", 0))


def order_by(request: Request, allowed: set[str], default: str) -> str:
    """``order_by`` (``field`` or ``-field``; the first of repeated values) checked against ``allowed``."""
    values = request.query_params.getlist("order_by")
    value = values[0] if values and values[0] else default
    name = value.lstrip("-")
    if name not in allowed:
        raise BadRequest(
            f"Ordering with '{name}' is disallowed or the attribute does not exist on the model; "
            f"use one of {sorted(allowed)} (prefix '-' for descending)",
            field="order_by",
        )
    return value


def bool_param(request: Request, name: str) -> bool | None:
    """A boolean query parameter; None when absent."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    lowered = raw.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise _invalid(name, "Input should be a valid boolean", raw)


def list_param(request: Request, name: str) -> list[str] | None:
    """A repeated parameter (``?state=a&state=b``, commas also split); None when absent."""
    values = [v for raw in request.query_params.getlist(name) for v in raw.split(",") if v]
    return values or None


def date_param(request: Request, name: str) -> datetime | None:
    """An ISO-8601 date-time query parameter (naive values are taken as UTC)."""
    raw = request.query_params.get(name)
    if not raw:
        return None
    return parse_datetime(raw, name, where="query")


def parse_datetime(raw: str, name: str, *, where: str = "body") -> datetime:
    """Parse ISO-8601 (``Z`` allowed); 422 naming ``name`` when it does not parse."""
    from datetime import UTC

    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise UnprocessableEntity(
            f"{name}: Input should be a valid datetime",
            field=name,
            errors=[
                {
                    "type": "datetime_parsing",
                    "loc": [where, name],
                    "msg": "Input should be a valid datetime",
                    "input": raw,
                }
            ],
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def date_range(request: Request, prefix: str) -> tuple[datetime | None, datetime | None]:
    """``<prefix>_gte`` / ``<prefix>_lte`` (``_gt``/``_lt`` are accepted as the same bounds)."""
    low = date_param(request, f"{prefix}_gte") or date_param(request, f"{prefix}_gt")
    high = date_param(request, f"{prefix}_lte") or date_param(request, f"{prefix}_lt")
    return low, high


def optional(value: str) -> str | None:
    """None for Airflow's ``~`` wildcard, else the value."""
    return None if value == WILDCARD else value
