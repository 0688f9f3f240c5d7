"""``airflow.operators.dummy_operator`` (Airflow 1 path)."""

from leoflow.sdk import DummyOperator, EmptyOperator

__all__ = ["DummyOperator", "EmptyOperator"]
