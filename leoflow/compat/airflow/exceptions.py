"""``airflow.exceptions``: the exceptions a task raises to end its try in a given state."""

from __future__ import annotations


class AirflowException(Exception):
    """Base of Airflow's exceptions."""


class AirflowSkipException(AirflowException):
    """Raise to end the task as skipped."""


class AirflowFailException(AirflowException):
    """Raise to fail the task without retrying it."""
