"""``airflow.operators.dummy`` (DummyOperator is EmptyOperator)."""

from leoflow.sdk import DummyOperator, EmptyOperator

__all__ = ["DummyOperator", "EmptyOperator"]
