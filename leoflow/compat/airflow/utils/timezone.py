"""``airflow.utils.timezone`` (the helpers DAG files use)."""

from __future__ import annotations

import datetime as _dt
from zoneinfo import ZoneInfo

utc = _dt.timezone.utc  # noqa: UP017 - DAG venvs may run Python 3.10


def datetime(*args: int, tzinfo: _dt.tzinfo | None = None, **kwargs: int) -> _dt.datetime:
    """A datetime in UTC unless ``tzinfo`` is given (Airflow's ``timezone.datetime``)."""
    return _dt.datetime(*args, tzinfo=tzinfo or utc, **kwargs)  # type: ignore[misc]


def utcnow() -> _dt.datetime:
    """The current time in UTC."""
    return _dt.datetime.now(utc)


def parse_timezone(name: str) -> ZoneInfo:
    """A ZoneInfo for an IANA name."""
    return ZoneInfo(name)


__all__ = ["datetime", "parse_timezone", "utc", "utcnow"]
