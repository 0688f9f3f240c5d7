"""``airflow.operators.bash``."""

from leoflow.sdk import BashOperator

__all__ = ["BashOperator"]
