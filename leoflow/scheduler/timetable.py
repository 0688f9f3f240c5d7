"""Which scheduled runs are due: Airflow 3's default timetables, with time as an input.

Mirrored definitions (``airflow/timetables/trigger.py``, ``simple.py``, ``_cron.py``):

* a cron string or preset -> ``CronTriggerTimetable(cron, timezone)``, Airflow 3's default
  (``[scheduler] create_cron_data_intervals = False``, ``run_immediately = False``): a run fires
  at each cron tick; ``logical_date = run_after = data_interval_start = data_interval_end`` = the
  tick. The cron is read in the DAG's IANA timezone and is DST-correct: a wall time that does not
  exist (spring forward) fires at the same instant as the shifted time, an ambiguous one fires
  once (first occurrence), and hourly-or-finer crons follow elapsed time across the fold as
  Airflow's ``CronMixin`` does.
* a timedelta -> ``DeltaTriggerTimetable(delta)`` (``create_delta_data_intervals = False``):
  ticks are ``previous + delta``, zero-length data interval, not aligned to any grid.
* ``@once`` -> ``OnceTimetable``: one run at start_date (or at ``now`` without one).
* ``@continuous`` -> ``ContinuousTimetable``: a new run whenever no run is active; its data
  interval runs from the previous run's end to ``now``.
* no schedule -> nothing (manual triggers only).

``catchup=True`` walks every missed tick from start_date (at most ``max_runs`` per call);
``catchup=False`` creates only the latest due tick. ``end_date`` is the last allowed tick. The
cursor is the data interval of the latest *scheduled* run (manual runs do not move it), as in
Airflow. run_id is ``scheduled__<logical_date ISO 8601 in UTC>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from croniter.croniter import CroniterError

from leoflow.errors import SpecError
from leoflow.spec import (
    ContinuousSchedule,
    CronSchedule,
    DeltaSchedule,
    OnceSchedule,
    Schedule,
)

CRON_PRESETS: dict[str, str] = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
"""Airflow's ``cron_presets`` plus ``@midnight``/``@annually`` (which croniter also knows)."""


@dataclass(frozen=True, slots=True)
class DataInterval:
    """A run's data interval (``start == end`` for trigger timetables)."""

    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class RunInfo:
    """One scheduled run to create."""

    run_id: str
    logical_date: datetime
    data_interval_start: datetime
    data_interval_end: datetime
    run_after: datetime

    @property
    def data_interval(self) -> DataInterval:
        """The run's data interval."""
        return DataInterval(self.data_interval_start, self.data_interval_end)


def scheduled_run_id(logical_date: datetime) -> str:
    """Airflow's run_id for a scheduled run: ``scheduled__<ISO 8601 in UTC>``."""
    return f"scheduled__{logical_date.astimezone(UTC).isoformat()}"


def _info(start: datetime, end: datetime) -> RunInfo:
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    return RunInfo(scheduled_run_id(start), start, start, end, end)


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """The IANA timezone ``name``; a SpecError naming the field when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SpecError(
            f"unknown timezone {name!r}",
            field="timezone",
            hint="use an IANA name such as 'UTC' or 'Europe/Paris'",
        ) from exc


@lru_cache(maxsize=1024)
def _expression(raw: str) -> tuple[str, bool]:
    """(cron expression, whether it fires at least every hour) after validation."""
    expr = CRON_PRESETS.get(raw.strip(), raw.strip())
    try:
        parsed = croniter(expr, datetime(2000, 1, 1))
    except (CroniterError, ValueError, KeyError) as exc:
        raise SpecError(
            f"invalid cron expression {raw!r}: {exc}",
            field="schedule.expression",
            hint="use five fields (minute hour day month weekday) or a preset like @daily",
        ) from exc
    if len(parsed.expanded) > 5:
        raise SpecError(
            f"invalid cron expression {raw!r}: seconds/years fields are not supported",
            field="schedule.expression",
            hint="use five fields (minute hour day month weekday)",
        )
    return expr, parsed.expanded[1] == ["*"]


class _Cron:
    """Cron arithmetic in a timezone, DST-corrected like Airflow's ``CronMixin``."""

    def __init__(self, raw: str, tz: ZoneInfo) -> None:
        self.expr, self.every_hour = _expression(raw)
        self.tz = tz

    def _aware(self, naive: datetime) -> datetime:
        # fold=0: a wall time that does not exist is read with the offset before the gap (so it
        # lands after the gap); an ambiguous one is its first occurrence.
        return naive.replace(tzinfo=self.tz).astimezone(UTC)

    def get_next(self, current: datetime) -> datetime:
        """The first tick strictly after ``current``."""
        naive = current.astimezone(self.tz).replace(tzinfo=None)
        scheduled = croniter(self.expr, naive).get_next(datetime)
        if not self.every_hour:
            return self._aware(scheduled)
        # Follow elapsed time so a fold hour is not skipped (Airflow's fold-hour workaround).
        return current.astimezone(UTC) + (scheduled - naive)

    def get_prev(self, current: datetime) -> datetime:
        """The last tick strictly before ``current``."""
        naive = current.astimezone(self.tz).replace(tzinfo=None)
        scheduled = croniter(self.expr, naive).get_prev(datetime)
        if not self.every_hour:
            return self._aware(scheduled)
        return current.astimezone(UTC) - (naive - scheduled)

    def align_to_next(self, current: datetime) -> datetime:
        """``current`` when it is a tick, else the next tick."""
        nxt = self.get_next(current)
        return current if self.get_prev(nxt) == current else nxt

    def align_to_prev(self, current: datetime) -> datetime:
        """``current`` when it is a tick, else the previous tick."""
        prev = self.get_prev(current)
        return current if self.get_next(prev) == current else prev

    def first_run(self, now: datetime) -> datetime:
        """``run_immediately=False`` with no start_date: the past tick only if it is recent."""
        past, nxt = self.align_to_prev(now), self.align_to_next(now)
        buffer = max((nxt - past) / 10, timedelta(minutes=5))
        return past if now - past <= buffer else nxt


class _Delta:
    """Timedelta arithmetic (Airflow's ``DeltaMixin``): no alignment at all."""

    def __init__(self, seconds: float) -> None:
        self.delta = timedelta(seconds=seconds)

    def get_next(self, current: datetime) -> datetime:
        return current + self.delta

    def align_to_next(self, current: datetime) -> datetime:
        return current

    def align_to_prev(self, current: datetime) -> datetime:
        return current

    def first_run(self, now: datetime) -> datetime:
        return now


def _next_trigger(
    clock: _Cron | _Delta,
    *,
    last: DataInterval | None,
    start_date: datetime | None,
    end_date: datetime | None,
    catchup: bool,
    now: datetime,
) -> datetime | None:
    """``_TriggerTimetable.next_dagrun_info`` with ``utcnow()`` replaced by ``now``."""
    if catchup:
        if last is not None:
            tick = clock.get_next(last.end)
        elif start_date is None:
            tick = clock.first_run(now)
        else:
            tick = clock.align_to_next(start_date)
    else:
        candidates = [clock.align_to_prev(now)]
        if last is not None:
            candidates.append(clock.get_next(last.end))
        elif start_date is None:
            candidates.append(clock.first_run(now))
        if start_date is not None:
            candidates.append(clock.align_to_next(start_date))
        tick = max(candidates)
    if end_date is not None and end_date < tick:
        return None
    return tick


def due_runs(
    schedule: Schedule | None,
    *,
    timezone: str = "UTC",
    start_date: datetime | None,
    end_date: datetime | None,
    catchup: bool,
    last_automated: DataInterval | None,
    now: datetime,
    has_active_run: bool = False,
    max_runs: int = 16,
) -> list[RunInfo]:
    """The scheduled runs due at ``now`` (``run_after <= now``), oldest first, at most max_runs."""
    if schedule is None or max_runs <= 0:
        return []
    if isinstance(schedule, OnceSchedule):
        return _once(start_date, end_date, last_automated, now)
    if isinstance(schedule, ContinuousSchedule):
        if has_active_run:
            return []
        return _continuous(start_date, end_date, last_automated, now)
    if isinstance(schedule, CronSchedule):
        clock: _Cron | _Delta = _Cron(schedule.expression, zone(timezone))
    elif isinstance(schedule, DeltaSchedule):
        clock = _Delta(schedule.seconds)
    else:  # pragma: no cover - the spec's union is closed
        raise SpecError(f"unsupported schedule {schedule!r}", field="schedule")
    runs: list[RunInfo] = []
    while len(runs) < max_runs:
        tick = _next_trigger(
            clock, last=last_automated, start_date=start_date, end_date=end_date,
            catchup=catchup, now=now,
        )  # fmt: skip
        if tick is None or tick > now:
            break
        info = _info(tick, tick)
        runs.append(info)
        last_automated = info.data_interval
    return runs


def _once(
    start_date: datetime | None,
    end_date: datetime | None,
    last: DataInterval | None,
    now: datetime,
) -> list[RunInfo]:
    if last is not None:
        return []
    run_after = start_date or now
    if (end_date is not None and run_after > end_date) or run_after > now:
        return []
    return [_info(run_after, run_after)]


def _continuous(
    start_date: datetime | None,
    end_date: datetime | None,
    last: DataInterval | None,
    now: datetime,
) -> list[RunInfo]:
    begin = start_date or now
    if last is not None:
        if last.end > now:
            start, end = begin, begin + (last.end - last.start)
        else:
            start, end = last.end, now
    else:
        start, end = begin, max(begin, now)
    if (end_date is not None and end > end_date) or end > now:
        return []
    return [_info(start, end)]


def validate_schedule(schedule: Schedule | None, timezone: str) -> None:
    """Raise a SpecError when the cron expression or the timezone is invalid."""
    zone(timezone)
    if isinstance(schedule, CronSchedule):
        _expression(schedule.expression)


def next_due_at(
    schedule: Schedule | None,
    *,
    timezone: str = "UTC",
    start_date: datetime | None,
    end_date: datetime | None,
    catchup: bool,
    last_automated: DataInterval | None,
    now: datetime,
) -> datetime | None:
    """When ``due_runs`` will next return a run: ``<= now`` means due now, None means never.

    The scheduler's shell uses it to leave a DAG out of its snapshots (and to sleep) until
    then; it never changes what ``due_runs`` decides. ``@continuous`` is due whenever no run is
    active, so it reports ``now``.
    """
    if schedule is None:
        return None
    if isinstance(schedule, OnceSchedule):
        if last_automated is not None:
            return None
        run_after = start_date or now
        return None if end_date is not None and run_after > end_date else run_after
    if isinstance(schedule, ContinuousSchedule):
        return now
    if isinstance(schedule, CronSchedule):
        clock: _Cron | _Delta = _Cron(schedule.expression, zone(timezone))
    elif isinstance(schedule, DeltaSchedule):
        clock = _Delta(schedule.seconds)
    else:  # pragma: no cover - the spec's union is closed
        raise SpecError(f"unsupported schedule {schedule!r}", field="schedule")
    return _next_trigger(
        clock, last=last_automated, start_date=start_date, end_date=end_date,
        catchup=catchup, now=now,
    )  # fmt: skip
