"""Trigger rules: a table of Airflow's documented cases plus an exhaustive cross-check."""

from __future__ import annotations

from itertools import combinations_with_replacement

import pytest

from leoflow.scheduler.states import TaskInstanceState as S
from leoflow.scheduler.trigger_rules import (
    Decision,
    UpstreamCounts,
    count_upstream,
    evaluate,
    evaluate_states,
)
from leoflow.spec import TriggerRule as R

RUN, WAIT, SKIP, UF = Decision.RUN, Decision.WAIT, Decision.SKIP, Decision.UPSTREAM_FAILED
ok, bad, skp, uf, rem = S.SUCCESS, S.FAILED, S.SKIPPED, S.UPSTREAM_FAILED, S.REMOVED
run, none, retry = S.RUNNING, S.NONE, S.UP_FOR_RETRY

# (rule, upstream states, expected): each row is a sentence of Airflow's trigger-rule docs.
TABLE = [
    (R.ALL_SUCCESS, [ok, ok], RUN),
    (R.ALL_SUCCESS, [ok, run], WAIT),
    (R.ALL_SUCCESS, [bad, run], UF),  # settled early, without waiting for the running one
    (R.ALL_SUCCESS, [uf, ok], UF),
    (R.ALL_SUCCESS, [skp, run], SKIP),
    (R.ALL_SUCCESS, [skp, bad], UF),  # failure beats skip
    (R.ALL_SUCCESS, [retry, ok], WAIT),  # up_for_retry is not done
    (R.ALL_SUCCESS, [rem, ok], WAIT),  # Airflow: removed is never a success
    (R.ALL_FAILED, [bad, uf], RUN),
    (R.ALL_FAILED, [bad, run], WAIT),
    (R.ALL_FAILED, [bad, ok], SKIP),
    (R.ALL_FAILED, [skp, run], SKIP),
    (R.ALL_DONE, [ok, bad, skp, uf], RUN),
    (R.ALL_DONE, [bad, run], WAIT),
    (R.ALL_DONE, [rem], RUN),
    (R.ALL_DONE_SETUP_SUCCESS, [bad, skp], RUN),  # no setup tasks: same as all_done
    (R.ALL_DONE_SETUP_SUCCESS, [bad, retry], WAIT),
    (R.ALL_DONE_MIN_ONE_SUCCESS, [ok, bad], RUN),
    (R.ALL_DONE_MIN_ONE_SUCCESS, [bad, uf], UF),
    (R.ALL_DONE_MIN_ONE_SUCCESS, [ok, run], WAIT),
    (R.ALL_DONE_MIN_ONE_SUCCESS, [ok, skp], SKIP),
    (R.ALL_SKIPPED, [skp, skp], RUN),
    (R.ALL_SKIPPED, [skp, run], WAIT),
    (R.ALL_SKIPPED, [skp, ok], SKIP),
    (R.ALL_SKIPPED, [uf, run], SKIP),
    (R.ONE_SUCCESS, [ok, run, run], RUN),  # fires early
    (R.ONE_SUCCESS, [bad, run], WAIT),
    (R.ONE_SUCCESS, [skp, skp], SKIP),
    (R.ONE_SUCCESS, [skp, bad], UF),
    (R.ONE_FAILED, [bad, run, run], RUN),  # fires early
    (R.ONE_FAILED, [uf, run], RUN),
    (R.ONE_FAILED, [ok, run], WAIT),
    (R.ONE_FAILED, [ok, skp], SKIP),
    (R.ONE_DONE, [ok, run], RUN),
    (R.ONE_DONE, [bad, run], RUN),
    (R.ONE_DONE, [skp, run], WAIT),
    (R.ONE_DONE, [skp, uf], SKIP),
    (R.NONE_FAILED, [ok, skp], RUN),
    (R.NONE_FAILED, [skp, skp], RUN),
    (R.NONE_FAILED, [ok, run], WAIT),
    (R.NONE_FAILED, [bad, run], UF),
    (R.NONE_FAILED_MIN_ONE_SUCCESS, [ok, skp], RUN),
    (R.NONE_FAILED_MIN_ONE_SUCCESS, [skp, skp], SKIP),
    (R.NONE_FAILED_MIN_ONE_SUCCESS, [uf, ok], UF),
    (R.NONE_FAILED_MIN_ONE_SUCCESS, [skp, run], WAIT),
    (R.NONE_SKIPPED, [ok, bad, uf], RUN),
    (R.NONE_SKIPPED, [ok, run], WAIT),
    (R.NONE_SKIPPED, [skp, run], SKIP),
    (R.ALWAYS, [run, none], RUN),
    (R.ALWAYS, [bad], RUN),
]


@pytest.mark.parametrize(
    ("rule", "ups", "expected"),
    TABLE,
    ids=[f"{r.value}-{'+'.join(s.value for s in u)}" for r, u, _ in TABLE],
)
def test_documented_cases(rule: R, ups: list[S], expected: Decision) -> None:
    assert evaluate_states(rule, ups) is expected


@pytest.mark.parametrize("rule", list(R))
def test_no_upstream_always_runs(rule: R) -> None:
    assert evaluate(rule, UpstreamCounts(total=0)) is RUN


def test_every_rule_is_covered_by_the_table() -> None:
    assert {r for r, _, _ in TABLE} == set(R)


def test_plain_string_rule_is_accepted() -> None:
    assert evaluate_states("one_success", [ok, run]) is RUN  # type: ignore[arg-type]


def test_count_upstream_tallies_finished_states_only() -> None:
    c = count_upstream([ok, ok, bad, skp, uf, rem, run, none, retry])
    assert (c.total, c.success, c.failed, c.skipped, c.upstream_failed, c.removed) == (
        9, 2, 1, 1, 1, 1,
    )  # fmt: skip
    assert c.done == 6


# ---------------------------------------------------------------------------------------------
# Exhaustive cross-check against a reference written from the docs' wording, with any/all over
# the states themselves (no counters), for every multiset of up to 4 upstream states.
# ---------------------------------------------------------------------------------------------

FINISHED = {ok, bad, skp, uf, rem}
UNIVERSE = [none, S.SCHEDULED, S.QUEUED, run, retry, ok, bad, skp, uf, rem]


def reference(rule: R, ups: tuple[S, ...]) -> Decision:
    def has(*states: S) -> bool:
        return any(s in states for s in ups)

    def every(*states: S) -> bool:
        return all(s in states for s in ups)

    all_done = every(*FINISHED)
    if not ups or rule is R.ALWAYS:
        return RUN
    if rule is R.ALL_SUCCESS:
        return UF if has(bad, uf) else SKIP if has(skp) else RUN if every(ok) else WAIT
    if rule is R.ALL_FAILED:
        return SKIP if has(ok, skp) else RUN if every(bad, uf) else WAIT
    if rule in (R.ALL_DONE, R.ALL_DONE_SETUP_SUCCESS):
        return RUN if all_done else WAIT
    if rule is R.ALL_DONE_MIN_ONE_SUCCESS:
        if has(skp):
            return SKIP
        return (RUN if has(ok) else UF) if all_done else WAIT
    if rule is R.ALL_SKIPPED:
        return SKIP if has(ok, bad, uf) else RUN if every(skp) else WAIT
    if rule is R.ONE_SUCCESS:
        if has(ok):
            return RUN
        return (SKIP if every(skp) else UF) if all_done else WAIT
    if rule is R.ONE_FAILED:
        return RUN if has(bad, uf) else SKIP if all_done else WAIT
    if rule is R.ONE_DONE:
        return RUN if has(ok, bad) else SKIP if all_done else WAIT
    if rule is R.NONE_FAILED:
        return UF if has(bad, uf) else RUN if every(ok, skp) else WAIT
    if rule is R.NONE_FAILED_MIN_ONE_SUCCESS:
        if has(bad, uf):
            return UF
        return SKIP if every(skp) else RUN if every(ok, skp) else WAIT
    if rule is R.NONE_SKIPPED:
        return SKIP if has(skp) else RUN if all_done else WAIT
    raise AssertionError(rule)


@pytest.mark.parametrize("rule", list(R))
def test_exhaustive_against_reference(rule: R) -> None:
    checked = 0
    for size in range(5):
        for ups in combinations_with_replacement(UNIVERSE, size):
            assert evaluate_states(rule, ups) is reference(rule, ups), (rule, ups)
            # Order of upstreams never matters.
            assert evaluate_states(rule, tuple(reversed(ups))) is reference(rule, ups)
            checked += 1
    assert checked == 1001
