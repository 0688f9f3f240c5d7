"""Retry eligibility, retry delay with Airflow's exponential backoff, execution deadlines."""

from __future__ import annotations

import hashlib
import itertools
import math
from datetime import UTC, datetime, timedelta

import pytest

from leoflow.scheduler.retries import (
    MAX_RETRY_DELAY_SECONDS,
    execution_deadline,
    failure_outcome,
    is_eligible_to_retry,
    retry_delay,
)
from leoflow.scheduler.states import TaskInstanceState as S

LD = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("retries", "try_number", "max_tries", "expected"),
    [
        (0, 1, 0, False),
        (2, 1, 2, True),
        (2, 2, 2, True),
        (2, 3, 2, False),  # retries=2 -> three tries in all
        (1, 3, 3, True),  # after a clear, max_tries = try_number + retries
    ],
)
def test_eligibility(retries: int, try_number: int, max_tries: int, expected: bool) -> None:
    assert (
        is_eligible_to_retry(retries=retries, try_number=try_number, max_tries=max_tries)
        is expected
    )


def _delay(try_number: int, base: float = 10, backoff: bool = True, cap: float | None = None):
    return retry_delay(
        dag_id="d",
        task_id="t",
        logical_date=LD,
        try_number=try_number,
        retry_delay_seconds=base,
        retry_exponential_backoff=backoff,
        max_retry_delay_seconds=cap,
    )


def test_plain_delay_is_retry_delay() -> None:
    assert _delay(1, base=300, backoff=False) == timedelta(seconds=300)
    assert _delay(7, base=300, backoff=False) == timedelta(seconds=300)


@pytest.mark.parametrize("try_number", [1, 2, 3, 4, 5, 8])
def test_backoff_matches_airflow_formula(try_number: int) -> None:
    min_backoff = max(1, math.ceil(10 * 2 ** (try_number - 1)))
    key = f"d#t#{LD.isoformat()}#{try_number}".encode()
    jitter = int(hashlib.sha1(key).hexdigest(), 16) % min_backoff
    got = _delay(try_number)
    assert got == timedelta(seconds=min_backoff + jitter)
    assert timedelta(seconds=min_backoff) <= got < timedelta(seconds=2 * min_backoff)


def test_backoff_grows_and_is_deterministic() -> None:
    delays = [_delay(n) for n in range(1, 7)]
    assert delays == [_delay(n) for n in range(1, 7)]
    assert all(b > a for a, b in itertools.pairwise(delays))


def test_backoff_capped_by_max_retry_delay_and_one_day() -> None:
    assert _delay(6, cap=60) == timedelta(seconds=60)
    assert _delay(200) == timedelta(seconds=MAX_RETRY_DELAY_SECONDS)


def test_zero_delay_backoff_still_at_least_one_second() -> None:
    assert _delay(1, base=0) == timedelta(seconds=1)


def _outcome(try_number: int, max_tries: int = 2, retries: int = 2):
    return failure_outcome(
        dag_id="d",
        task_id="t",
        logical_date=LD,
        try_number=try_number,
        max_tries=max_tries,
        retries=retries,
        retry_delay_seconds=30,
        retry_exponential_backoff=False,
        max_retry_delay_seconds=None,
        end_date=LD + timedelta(hours=1),
    )


def test_failure_outcome_retry_then_fail() -> None:
    first = _outcome(1)
    assert first.state is S.UP_FOR_RETRY
    assert first.next_retry_at == LD + timedelta(hours=1, seconds=30)
    last = _outcome(3)
    assert last.state is S.FAILED and last.next_retry_at is None


def test_execution_deadline() -> None:
    assert execution_deadline(LD, 90) == LD + timedelta(seconds=90)
    assert execution_deadline(None, 90) is None
    assert execution_deadline(LD, None) is None
