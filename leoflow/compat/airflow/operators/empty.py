"""``airflow.operators.empty``."""

from leoflow.sdk import EmptyOperator

__all__ = ["EmptyOperator"]
