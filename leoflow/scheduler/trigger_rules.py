"""Airflow 3's trigger rules: may a task run, given the states of its direct upstreams?

This mirrors ``airflow/ti_deps/deps/trigger_rule_dep.py`` (``TriggerRuleDep`` with
``flag_upstream_failed=True``, as the scheduler runs it) for unmapped tasks without setup or
teardown tasks:

* Only *finished* upstreams are counted (success, failed, skipped, upstream_failed, removed);
  an upstream in any other state (none, scheduled, queued, running, up_for_retry, restarting,
  deferred) is "not done yet".
* A rule first decides whether the task is settled early as SKIP or UPSTREAM_FAILED; if not, it
  decides RUN or WAIT. One_success, one_failed and one_done fire as soon as one upstream
  qualifies, without waiting for the others.
* ``all_done_setup_success`` behaves exactly as ``all_done``: Leoflow has no setup tasks, and in
  Airflow the setup clauses only apply when an upstream setup exists.
* A task without upstreams, or with ``always``, runs at once.
* Airflow's quirks are kept on purpose: a ``removed`` upstream counts as done but never as a
  success, so ``all_success`` (or ``none_failed``, ``all_failed``, ``all_skipped``) below a
  removed task waits forever; the run then ends as deadlocked (see ``decide``).
  ``all_done_min_one_success`` is settled as SKIP as soon as one upstream is skipped, as
  Airflow 3's code does (its docs speak of "non-skipped" upstreams, the code skips).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from leoflow.scheduler.states import TaskInstanceState
from leoflow.spec import TriggerRule

TI = TaskInstanceState
TR = TriggerRule


class Decision(StrEnum):
    """What a trigger rule says about a task instance in state ``none``."""

    RUN = "run"  # schedule it now
    WAIT = "wait"  # not yet: an upstream it depends on is not done
    SKIP = "skip"  # settled: the task will never run -> skipped
    UPSTREAM_FAILED = "upstream_failed"  # settled: -> upstream_failed


@dataclass(frozen=True, slots=True)
class UpstreamCounts:
    """How many direct upstreams there are (``total``) and how many finished in each state."""

    total: int
    success: int = 0
    skipped: int = 0
    failed: int = 0
    upstream_failed: int = 0
    removed: int = 0

    @property
    def done(self) -> int:
        """Upstreams in a finished state."""
        return self.success + self.skipped + self.failed + self.upstream_failed + self.removed


def count_upstream(states: Iterable[TaskInstanceState]) -> UpstreamCounts:
    """Tally the states of the direct upstream task instances (one state per upstream)."""
    total = success = skipped = failed = upstream_failed = removed = 0
    for state in states:
        total += 1
        if state is TI.SUCCESS:
            success += 1
        elif state is TI.SKIPPED:
            skipped += 1
        elif state is TI.FAILED:
            failed += 1
        elif state is TI.UPSTREAM_FAILED:
            upstream_failed += 1
        elif state is TI.REMOVED:
            removed += 1
    return UpstreamCounts(total, success, skipped, failed, upstream_failed, removed)


def _settled(rule: TriggerRule, c: UpstreamCounts) -> Decision | None:
    """The early SKIP / UPSTREAM_FAILED verdict (Airflow's ``flag_upstream_failed`` branch)."""
    all_done = c.done >= c.total
    failures = c.failed + c.upstream_failed
    if rule is TR.ALL_SUCCESS:
        if failures:
            return Decision.UPSTREAM_FAILED
        if c.skipped:
            return Decision.SKIP
    elif rule is TR.ALL_FAILED:
        if c.success or c.skipped:
            return Decision.SKIP
    elif rule is TR.ONE_SUCCESS:
        if all_done and c.done == c.skipped:
            return Decision.SKIP
        if all_done and c.success <= 0:
            return Decision.UPSTREAM_FAILED
    elif rule is TR.ONE_FAILED:
        if all_done and not failures:
            return Decision.SKIP
    elif rule is TR.ONE_DONE:
        if all_done and not (c.failed or c.success):
            return Decision.SKIP
    elif rule is TR.NONE_FAILED:
        if failures:
            return Decision.UPSTREAM_FAILED
    elif rule is TR.NONE_FAILED_MIN_ONE_SUCCESS:
        if failures:
            return Decision.UPSTREAM_FAILED
        if c.skipped == c.total:
            return Decision.SKIP
    elif rule is TR.NONE_SKIPPED:
        if c.skipped:
            return Decision.SKIP
    elif rule is TR.ALL_SKIPPED:
        if c.success or failures:
            return Decision.SKIP
    elif rule is TR.ALL_DONE_MIN_ONE_SUCCESS:
        if c.skipped > 0:
            return Decision.SKIP
        if c.success + failures + c.removed >= c.total and c.success == 0:
            return Decision.UPSTREAM_FAILED
    return None


def _met(rule: TriggerRule, c: UpstreamCounts) -> bool:
    """Whether the rule's run condition holds (Airflow's passing status)."""
    if rule is TR.ALL_SUCCESS:
        return c.total - c.success <= 0
    if rule is TR.ALL_FAILED:
        return c.total - c.failed - c.upstream_failed <= 0
    if rule in (TR.ALL_DONE, TR.ALL_DONE_SETUP_SUCCESS):
        return c.done >= c.total
    if rule is TR.ONE_SUCCESS:
        return c.success > 0
    if rule is TR.ONE_FAILED:
        return bool(c.failed or c.upstream_failed)
    if rule is TR.ONE_DONE:
        return c.success + c.failed > 0
    if rule in (TR.NONE_FAILED, TR.NONE_FAILED_MIN_ONE_SUCCESS):
        return c.total - c.success - c.skipped <= 0
    if rule is TR.NONE_SKIPPED:
        return c.done >= c.total and c.skipped == 0
    if rule is TR.ALL_SKIPPED:
        return c.total - c.skipped <= 0
    if rule is TR.ALL_DONE_MIN_ONE_SUCCESS:
        non_skipped_done = c.success + c.failed + c.upstream_failed + c.removed
        return c.skipped == 0 and non_skipped_done >= c.total - c.skipped and c.success > 0
    if rule is TR.ALWAYS:
        return True
    raise ValueError(f"unknown trigger rule {rule!r}")


def evaluate(rule: TriggerRule, counts: UpstreamCounts) -> Decision:
    """Decide RUN, WAIT, SKIP or UPSTREAM_FAILED for a task in state ``none``."""
    rule = TriggerRule(rule)  # accept the plain string too
    if counts.total == 0 or rule is TR.ALWAYS:
        return Decision.RUN
    settled = _settled(rule, counts)
    if settled is not None:
        return settled
    return Decision.RUN if _met(rule, counts) else Decision.WAIT


def evaluate_states(rule: TriggerRule, states: Iterable[TaskInstanceState]) -> Decision:
    """:func:`evaluate` over the direct upstreams' states."""
    return evaluate(rule, count_upstream(states))
