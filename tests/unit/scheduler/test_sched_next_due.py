"""next_due_at agrees with due_runs: nothing is due before it, something is due at it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from leoflow.scheduler.timetable import DataInterval, due_runs, next_due_at
from leoflow.spec import ContinuousSchedule, CronSchedule, DeltaSchedule, OnceSchedule


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


NOW = utc(2024, 3, 10, 12, 34, 56)
CASES = [
    # (schedule, timezone, start, end, catchup, last)
    (CronSchedule(expression="0 0 * * *"), "UTC", utc(2024, 1, 1), None, False, None),
    (CronSchedule(expression="@hourly"), "UTC", utc(2024, 1, 1), None, True,
     DataInterval(NOW - timedelta(hours=3), NOW - timedelta(hours=3))),
    (CronSchedule(expression="30 2 * * *"), "Europe/Paris", utc(2024, 1, 1), None, False,
     DataInterval(utc(2024, 3, 10, 1, 30), utc(2024, 3, 10, 1, 30))),
    (CronSchedule(expression="0 0 1 1 *"), "UTC", utc(2099, 1, 1), None, False, None),
    (CronSchedule(expression="0 0 * * *"), "UTC", utc(2024, 1, 1), utc(2024, 2, 1), False,
     DataInterval(utc(2024, 2, 1), utc(2024, 2, 1))),
    (DeltaSchedule(seconds=600), "UTC", utc(2024, 3, 10, 12), None, True,
     DataInterval(utc(2024, 3, 10, 12, 30), utc(2024, 3, 10, 12, 30))),
    (OnceSchedule(), "UTC", utc(2024, 3, 11), None, False, None),
    (OnceSchedule(), "UTC", utc(2024, 3, 1), None, False, None),
]  # fmt: skip


@pytest.mark.parametrize(("schedule", "tz", "start", "end", "catchup", "last"), CASES)
def test_next_due_at_matches_due_runs(schedule, tz, start, end, catchup, last) -> None:
    kw = dict(timezone=tz, start_date=start, end_date=end, catchup=catchup, last_automated=last)
    due = next_due_at(schedule, now=NOW, **kw)
    now_runs = due_runs(schedule, now=NOW, **kw)
    if due is None:
        assert now_runs == []
        assert due_runs(schedule, now=NOW + timedelta(days=3650), **kw) == []
    elif due <= NOW:
        assert now_runs, "due now, so due_runs must create a run now"
    else:
        assert now_runs == []
        assert due_runs(schedule, now=due - timedelta(microseconds=1), **kw) == []
        at_due = due_runs(schedule, now=due, **kw)
        assert at_due and at_due[0].run_after == due


def test_no_schedule_and_continuous() -> None:
    kw = dict(start_date=None, end_date=None, catchup=False, last_automated=None, now=NOW)
    assert next_due_at(None, **kw) is None
    assert next_due_at(ContinuousSchedule(), **kw) == NOW
