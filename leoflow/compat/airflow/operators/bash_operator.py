"""``airflow.operators.bash_operator`` (Airflow 1 path)."""

from leoflow.sdk import BashOperator

__all__ = ["BashOperator"]
