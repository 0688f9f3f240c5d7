"""Timetables: cron (presets, timezones, DST), timedelta, @once, @continuous, catchup, end_date."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from leoflow.errors import SpecError
from leoflow.scheduler.timetable import (
    DataInterval,
    RunInfo,
    due_runs,
    scheduled_run_id,
    validate_schedule,
)
from leoflow.spec import ContinuousSchedule, CronSchedule, DeltaSchedule, OnceSchedule


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def runs(schedule, *, now, start=None, end=None, catchup=False, last=None, tz="UTC", **kw):
    return due_runs(
        schedule,
        timezone=tz,
        start_date=start,
        end_date=end,
        catchup=catchup,
        last_automated=last,
        now=now,
        **kw,
    )


def ticks(found: list[RunInfo]) -> list[datetime]:
    return [r.logical_date for r in found]


DAILY = CronSchedule(expression="@daily")


def test_trigger_timetable_shape() -> None:
    (info,) = runs(DAILY, start=utc(2024, 1, 1), now=utc(2024, 1, 5, 10))
    assert info.logical_date == info.run_after == utc(2024, 1, 5)
    assert info.data_interval_start == info.data_interval_end == utc(2024, 1, 5)
    assert info.run_id == "scheduled__2024-01-05T00:00:00+00:00"


def test_catchup_false_creates_only_latest_tick() -> None:
    assert ticks(runs(DAILY, start=utc(2024, 1, 1), now=utc(2024, 1, 5, 10))) == [utc(2024, 1, 5)]


def test_catchup_true_creates_every_missed_tick_bounded() -> None:
    got = runs(DAILY, start=utc(2024, 1, 1), now=utc(2024, 1, 5, 10), catchup=True)
    assert ticks(got) == [utc(2024, 1, d) for d in range(1, 6)]
    bounded = runs(DAILY, start=utc(2024, 1, 1), now=utc(2024, 1, 5), catchup=True, max_runs=2)
    assert ticks(bounded) == [utc(2024, 1, 1), utc(2024, 1, 2)]


def test_catchup_resumes_after_last_scheduled_run() -> None:
    last = DataInterval(utc(2024, 1, 3), utc(2024, 1, 3))
    got = runs(DAILY, start=utc(2024, 1, 1), now=utc(2024, 1, 5, 1), catchup=True, last=last)
    assert ticks(got) == [utc(2024, 1, 4), utc(2024, 1, 5)]


def test_nothing_due_before_next_tick_then_due_exactly_at_it() -> None:
    last = DataInterval(utc(2024, 1, 5), utc(2024, 1, 5))
    assert runs(DAILY, start=utc(2024, 1, 1), now=utc(2024, 1, 5, 23, 59), last=last) == []
    assert ticks(runs(DAILY, start=utc(2024, 1, 1), now=utc(2024, 1, 6), last=last)) == [
        utc(2024, 1, 6)
    ]


def test_end_date_is_last_allowed_tick() -> None:
    got = runs(DAILY, start=utc(2024, 1, 1), end=utc(2024, 1, 3), now=utc(2024, 2, 1), catchup=True)
    assert ticks(got) == [utc(2024, 1, 1), utc(2024, 1, 2), utc(2024, 1, 3)]
    assert runs(DAILY, start=utc(2024, 1, 1), end=utc(2024, 1, 3), now=utc(2024, 2, 1)) == []


def test_start_date_in_future_gives_nothing() -> None:
    assert runs(DAILY, start=utc(2024, 3, 1), now=utc(2024, 1, 5), catchup=True) == []
    assert runs(DAILY, start=utc(2024, 3, 1), now=utc(2024, 1, 5)) == []


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (utc(2024, 1, 5, 0, 3), [utc(2024, 1, 5)]),  # within 10% of the period: run it
        (utc(2024, 1, 5, 5), []),  # too late: wait for the next tick
    ],
)
def test_no_start_date_runs_recent_tick_only(now: datetime, expected: list[datetime]) -> None:
    assert ticks(runs(DAILY, now=now)) == expected


@pytest.mark.parametrize(
    ("preset", "first", "second"),
    [
        ("@hourly", utc(2024, 1, 1, 0), utc(2024, 1, 1, 1)),
        ("@daily", utc(2024, 1, 1), utc(2024, 1, 2)),
        ("@midnight", utc(2024, 1, 1), utc(2024, 1, 2)),
        ("@weekly", utc(2024, 1, 7), utc(2024, 1, 14)),  # Sundays
        ("@monthly", utc(2024, 1, 1), utc(2024, 2, 1)),
        ("@quarterly", utc(2024, 1, 1), utc(2024, 4, 1)),
        ("@yearly", utc(2024, 1, 1), utc(2025, 1, 1)),
        ("@annually", utc(2024, 1, 1), utc(2025, 1, 1)),
        ("*/15 * * * *", utc(2024, 1, 1, 0, 0), utc(2024, 1, 1, 0, 15)),
    ],
)
def test_presets(preset: str, first: datetime, second: datetime) -> None:
    got = runs(
        CronSchedule(expression=preset),
        start=utc(2024, 1, 1),
        now=utc(2026, 1, 1),
        catchup=True,
        max_runs=2,
    )
    assert ticks(got) == [first, second]


def test_cron_in_timezone_across_spring_forward() -> None:
    # 09:00 New York: 14:00Z before DST starts (2024-03-10), 13:00Z after.
    got = runs(
        CronSchedule(expression="0 9 * * *"),
        tz="America/New_York",
        start=utc(2024, 3, 9),
        now=utc(2024, 3, 12),
        catchup=True,
    )
    assert ticks(got) == [utc(2024, 3, 9, 14), utc(2024, 3, 10, 13), utc(2024, 3, 11, 13)]


def test_nonexistent_wall_time_fires_once_after_the_gap() -> None:
    # Paris skips 02:00-03:00 on 2024-03-31: 02:30 fires at 03:30 CEST = 01:30Z.
    got = runs(
        CronSchedule(expression="30 2 * * *"),
        tz="Europe/Paris",
        start=utc(2024, 3, 30),
        now=utc(2024, 4, 2),
        catchup=True,
    )
    assert ticks(got) == [utc(2024, 3, 30, 1, 30), utc(2024, 3, 31, 1, 30), utc(2024, 4, 1, 0, 30)]


def test_ambiguous_wall_time_fires_once_at_first_occurrence() -> None:
    # New York repeats 01:00-02:00 on 2024-11-03; 01:30 fires once, at 01:30 EDT = 05:30Z.
    got = runs(
        CronSchedule(expression="30 1 * * *"),
        tz="America/New_York",
        start=utc(2024, 11, 2),
        now=utc(2024, 11, 5),
        catchup=True,
    )
    assert ticks(got) == [utc(2024, 11, 2, 5, 30), utc(2024, 11, 3, 5, 30), utc(2024, 11, 4, 6, 30)]


def test_hourly_cron_keeps_the_fold_hour() -> None:
    got = runs(
        CronSchedule(expression="30 * * * *"),
        tz="America/New_York",
        start=utc(2024, 11, 3, 4),
        now=utc(2024, 11, 3, 8),
        catchup=True,
    )
    # 00:30 EDT, 01:30 EDT, 01:30 EST, 02:30 EST, 03:30 EST: one run every real hour.
    assert ticks(got) == [utc(2024, 11, 3, h, 30) for h in (4, 5, 6, 7)]


def test_delta_schedule() -> None:
    hourly = DeltaSchedule(seconds=3600)
    t0 = utc(2024, 1, 1)
    got = runs(hourly, start=t0, now=t0 + timedelta(hours=2, minutes=30), catchup=True)
    assert ticks(got) == [t0, t0 + timedelta(hours=1), t0 + timedelta(hours=2)]
    # catchup=False: not aligned to a grid; "now" when overdue (Airflow's DeltaTriggerTimetable).
    now = t0 + timedelta(hours=5, minutes=7)
    assert ticks(runs(hourly, start=t0, now=now)) == [now]
    last = DataInterval(now, now)
    assert runs(hourly, start=t0, now=now + timedelta(minutes=59), last=last) == []
    assert ticks(runs(hourly, start=t0, now=now + timedelta(hours=1), last=last)) == [
        now + timedelta(hours=1)
    ]


def test_once() -> None:
    once = OnceSchedule()
    start = utc(2024, 1, 1)
    assert ticks(runs(once, start=start, now=utc(2024, 6, 1))) == [start]
    assert runs(once, start=start, now=utc(2024, 6, 1), last=DataInterval(start, start)) == []
    assert ticks(runs(once, now=utc(2024, 6, 1))) == [utc(2024, 6, 1)]
    assert runs(once, start=utc(2025, 1, 1), now=utc(2024, 6, 1)) == []


def test_continuous() -> None:
    cont = ContinuousSchedule()
    start, now = utc(2024, 1, 1), utc(2024, 1, 2)
    (first,) = runs(cont, start=start, now=now)
    assert (first.data_interval_start, first.data_interval_end) == (start, now)
    assert first.logical_date == start and first.run_after == now
    assert runs(cont, start=start, now=now, has_active_run=True) == []
    last = DataInterval(start, now)
    (nxt,) = runs(cont, start=start, now=now + timedelta(minutes=1), last=last)
    assert (nxt.data_interval_start, nxt.data_interval_end) == (now, now + timedelta(minutes=1))


def test_no_schedule_never_runs() -> None:
    assert runs(None, start=utc(2024, 1, 1), now=utc(2025, 1, 1), catchup=True) == []


def test_run_id_is_utc_iso() -> None:
    paris = datetime(2024, 7, 1, 2, tzinfo=UTC).astimezone(
        __import__("zoneinfo").ZoneInfo("Europe/Paris")
    )
    assert scheduled_run_id(paris) == "scheduled__2024-07-01T02:00:00+00:00"


@pytest.mark.parametrize("expression", ["not a cron", "61 * * * *", "* * * * * *"])
def test_invalid_cron_is_a_spec_error(expression: str) -> None:
    with pytest.raises(SpecError) as err:
        validate_schedule(CronSchedule(expression=expression), "UTC")
    assert err.value.field == "schedule.expression"


def test_invalid_timezone_is_a_spec_error() -> None:
    with pytest.raises(SpecError) as err:
        validate_schedule(DAILY, "Mars/Olympus")
    assert err.value.field == "timezone"
