"""Airflow 3's trigger rules (same names and values as ``airflow.utils.trigger_rule``)."""

from __future__ import annotations

from enum import Enum

from leoflow.sdk._errors import fail


class TriggerRule(str, Enum):  # noqa: UP042 - StrEnum is 3.11+, DAG venvs may be 3.10
    """When a task may run, given the states of its upstream tasks."""

    ALL_SUCCESS = "all_success"
    ALL_FAILED = "all_failed"
    ALL_DONE = "all_done"
    ALL_DONE_MIN_ONE_SUCCESS = "all_done_min_one_success"
    ALL_DONE_SETUP_SUCCESS = "all_done_setup_success"
    ALL_SKIPPED = "all_skipped"
    ONE_SUCCESS = "one_success"
    ONE_FAILED = "one_failed"
    ONE_DONE = "one_done"
    NONE_FAILED = "none_failed"
    NONE_FAILED_MIN_ONE_SUCCESS = "none_failed_min_one_success"
    NONE_SKIPPED = "none_skipped"
    ALWAYS = "always"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def is_valid(cls, rule: str) -> bool:
        """True when ``rule`` names a trigger rule."""
        return rule in cls.all_triggers()

    @classmethod
    def all_triggers(cls) -> set[str]:
        """Every valid rule value."""
        return {r.value for r in cls}


_RENAMED = {"dummy": "always", "none_failed_or_skipped": "none_failed_min_one_success"}


def check_trigger_rule(rule: object) -> str:
    """The rule's string value, or an AuthoringError at the user's line."""
    value = rule.value if isinstance(rule, TriggerRule) else rule
    if isinstance(value, str) and TriggerRule.is_valid(value):
        return value
    hint = f"use one of: {', '.join(sorted(TriggerRule.all_triggers()))}"
    if value in _RENAMED:
        hint = f"Airflow 3 renamed it to {_RENAMED[value]!r}"  # type: ignore[index]
    raise fail(f"unknown trigger_rule {value!r}", hint=hint)
