"""``airflow.utils.dates`` (Airflow 2's ``days_ago``)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone


def days_ago(n: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    """Midnight UTC ``n`` days ago (then ``hour:minute:second``), as Airflow 2 had it."""
    # timezone.utc, not datetime.UTC: DAG venvs may run Python 3.10.
    now = datetime.now(timezone.utc)  # noqa: UP017
    today = now.replace(hour=hour, minute=minute, second=second, microsecond=0)
    return today - timedelta(days=n)


__all__ = ["days_ago"]
