"""Retries with their delay, Airflow 3's 13 trigger rules, a 100-branch map-reduce: via the API."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest

from leoflow.scheduler.retries import retry_delay
from leoflow.scheduler.trigger_rules import Decision, UpstreamCounts, evaluate
from leoflow.spec import TriggerRule
from tests.e2e.scheduler.conftest import Api

pytestmark = pytest.mark.slow

RETRY_DELAY_SECONDS = 2

RETRY_DAG = f"""
from datetime import timedelta

from airflow.sdk import DAG, task


@task(retries=2, retry_delay=timedelta(seconds={RETRY_DELAY_SECONDS}))
def flaky() -> None:
    raise RuntimeError("broken on purpose")


@task
def after(value: object) -> object:
    return value


@task(retries=2, retry_delay=timedelta(seconds=1), retry_exponential_backoff=True)
def backoff() -> None:
    raise RuntimeError("broken with backoff")


with DAG("sched_retry", schedule=None):
    after(flaky())
    backoff()
"""


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


def _gaps(tries: list[dict[str, Any]]) -> list[timedelta]:
    """From each try's end to the next try's start."""
    return [_when(b["start_date"]) - _when(a["end_date"]) for a, b in pairwise(tries)]


@pytest.fixture(scope="module")
def retry_run(api: Api) -> dict[str, Any]:
    """One finished run of RETRY_DAG (flaky and backoff run side by side in it)."""
    api.push_dag("sched_retry", RETRY_DAG)
    api.trigger("sched_retry", "r1")
    return api.wait_run("sched_retry", "r1")


def test_a_failing_task_retries_after_its_delay_then_fails_the_run(
    api: Api, retry_run: dict[str, Any]
) -> None:
    assert retry_run["state"] == "failed"
    assert api.states("sched_retry", "r1") == {
        "flaky": "failed",
        "after": "upstream_failed",
        "backoff": "failed",
    }
    flaky = api.ti("sched_retry", "r1", "flaky")
    assert flaky["try_number"] == 3 and flaky["max_tries"] == 2
    tries = api.tries("sched_retry", "r1", "flaky")
    assert [t["try_number"] for t in tries] == [1, 2, 3]
    assert tries[-1]["state"] == "failed"
    assert all(t["state"] in ("up_for_retry", "failed") for t in tries[:-1])
    delay = timedelta(seconds=RETRY_DELAY_SECONDS)
    assert all(gap >= delay for gap in _gaps(tries)), tries
    for number in (1, 2, 3):
        assert "broken on purpose" in "\n".join(api.log_lines("sched_retry", "r1", "flaky", number))


def test_exponential_backoff_doubles_the_wait_between_tries(
    api: Api, retry_run: dict[str, Any]
) -> None:
    assert api.ti("sched_retry", "r1", "backoff")["state"] == "failed"
    tries = api.tries("sched_retry", "r1", "backoff")
    assert [t["try_number"] for t in tries] == [1, 2, 3]
    expected = [
        retry_delay(
            dag_id="sched_retry",
            task_id="backoff",
            logical_date=None,
            try_number=n,
            retry_delay_seconds=1,
            retry_exponential_backoff=True,
        )
        for n in (1, 2)
    ]
    # Airflow's jitter keeps each wait in [min_backoff, 2 * min_backoff).
    assert timedelta(seconds=1) <= expected[0] < timedelta(seconds=2)
    assert timedelta(seconds=2) <= expected[1] < timedelta(seconds=4)
    for gap, wait in zip(_gaps(tries), expected, strict=True):
        assert gap >= wait, (gap, wait, tries)


# -- trigger rules -------------------------------------------------------------------------

# Upstream mixes: each gets its own upstream tasks and one downstream per rule.
MIXES = {
    "sfk": ("success", "failed", "skipped"),
    "fk": ("failed", "skipped"),
    "kk": ("skipped", "skipped"),
    "ff": ("failed", "failed"),
    "ss": ("success", "success"),
}
S, K, U = "success", "skipped", "upstream_failed"
# What Airflow 3 gives the downstream, per mix in MIXES order (TriggerRuleDep semantics).
EXPECTED = {
    "all_success": (U, U, K, U, S),
    "all_failed": (K, K, K, S, K),
    "all_done": (S, S, S, S, S),
    "all_done_min_one_success": (K, K, K, U, S),
    "all_done_setup_success": (S, S, S, S, S),
    "all_skipped": (K, K, S, K, K),
    "one_success": (S, U, K, U, S),
    "one_failed": (S, S, K, S, K),
    "one_done": (S, S, K, S, S),
    "none_failed": (U, U, S, U, S),
    "none_failed_min_one_success": (U, U, K, U, S),
    "none_skipped": (K, K, K, S, S),
    "always": (S, S, S, S, S),
}

RULES_DAG = f"""
from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

MIXES = {MIXES!r}
RULES = {sorted(EXPECTED)!r}
# exit 99 is BashOperator's skip code.
COMMANDS = {{"success": "true", "failed": "exit 1", "skipped": "exit 99"}}

with DAG("sched_rules", schedule=None):
    for mix, outcomes in MIXES.items():
        ups = [
            BashOperator(task_id=f"{{mix}}_up{{i}}_{{o}}", bash_command=COMMANDS[o], retries=0)
            for i, o in enumerate(outcomes)
        ]
        for rule in RULES:
            ups >> EmptyOperator(task_id=f"{{mix}}__{{rule}}", trigger_rule=rule)
"""

_DECIDED = {Decision.RUN: S, Decision.SKIP: K, Decision.UPSTREAM_FAILED: U}


def test_expected_table_covers_every_rule_and_agrees_with_the_decision_core() -> None:
    assert set(EXPECTED) == {rule.value for rule in TriggerRule}
    for rule, per_mix in EXPECTED.items():
        for outcomes, expected in zip(MIXES.values(), per_mix, strict=True):
            counts = UpstreamCounts(
                total=len(outcomes),
                success=outcomes.count("success"),
                failed=outcomes.count("failed"),
                skipped=outcomes.count("skipped"),
            )
            assert _DECIDED[evaluate(TriggerRule(rule), counts)] == expected, (rule, outcomes)


def test_every_trigger_rule_ends_as_airflow_says(api: Api) -> None:
    api.push_dag("sched_rules", RULES_DAG)
    api.trigger("sched_rules", "r1")
    # Some leaves end upstream_failed, so the run fails.
    assert api.wait_run("sched_rules", "r1", timeout=90)["state"] == "failed"
    states = api.states("sched_rules", "r1")
    for mix, outcomes in MIXES.items():
        for i, outcome in enumerate(outcomes):
            assert states[f"{mix}_up{i}_{outcome}"] == outcome
    got = {rule: tuple(states[f"{mix}__{rule}"] for mix in MIXES) for rule in EXPECTED}
    assert got == EXPECTED


SKIP_DAG = """
from airflow.exceptions import AirflowSkipException
from airflow.sdk import DAG, task


@task
def nothing_to_do() -> None:
    raise AirflowSkipException("no new data")


@task
def process() -> str:
    return "processed"


@task(trigger_rule="none_failed")
def report() -> str:
    return "reported"


with DAG("sched_skip", schedule=None):
    skipped = nothing_to_do()
    skipped >> process()
    skipped >> report()
"""


def test_airflow_skip_exception_skips_the_task_and_its_all_success_downstream(api: Api) -> None:
    api.push_dag("sched_skip", SKIP_DAG)
    api.trigger("sched_skip", "r1")
    assert api.wait_run("sched_skip", "r1")["state"] == "success"
    assert api.states("sched_skip", "r1") == {
        "nothing_to_do": "skipped",
        "process": "skipped",
        "report": "success",
    }
    assert api.xcom("sched_skip", "r1", "report") == "reported"


# -- map-reduce ----------------------------------------------------------------------------

FAILING_BRANCHES = {0, 3, 17, 42, 64, 99}

MAP_REDUCE_DAG = f"""
from airflow.sdk import DAG, task

FAILING = {sorted(FAILING_BRANCHES)!r}


@task(retries=0)
def branch(i: int) -> int:
    if i in FAILING:
        raise ValueError(f"branch {{i}} fails on purpose")
    return i * i


@task(trigger_rule="all_done")
def reduce(values: list) -> list:
    return values


with DAG("sched_mapreduce", schedule=None):
    reduce([branch(i) for i in range(100)])
"""


def test_hundred_branch_map_reduce_gets_none_in_the_failed_slots(api: Api) -> None:
    api.push_dag("sched_mapreduce", MAP_REDUCE_DAG)
    api.trigger("sched_mapreduce", "r1")
    # The reducer is the only leaf and it succeeds, so the run succeeds (Airflow's leaf rule).
    assert api.wait_run("sched_mapreduce", "r1", timeout=90)["state"] == "success"
    tis = {task_id: ti for (task_id, _), ti in api.tis("sched_mapreduce", "r1").items()}
    branches = ["branch", *(f"branch__{i}" for i in range(1, 100))]
    assert set(tis) == {*branches, "reduce"}
    for i, task_id in enumerate(branches):
        assert tis[task_id]["state"] == ("failed" if i in FAILING_BRANCHES else "success")
    assert tis["reduce"]["state"] == "success"
    # all_done: the reducer started only once every branch had finished.
    last_end = max(_when(tis[t]["end_date"]) for t in branches)
    assert _when(tis["reduce"]["start_date"]) >= last_end
    expected = [None if i in FAILING_BRANCHES else i * i for i in range(100)]
    assert api.xcom("sched_mapreduce", "r1", "reduce") == expected
    assert api.xcom_keys("sched_mapreduce", "r1", "branch__3") == []
    assert api.xcom("sched_mapreduce", "r1", "branch__5") == 25
