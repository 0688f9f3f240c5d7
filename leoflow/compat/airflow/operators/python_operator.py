"""``airflow.operators.python_operator`` (Airflow 1 path)."""

from leoflow.sdk import BranchPythonOperator, PythonOperator, ShortCircuitOperator

__all__ = ["BranchPythonOperator", "PythonOperator", "ShortCircuitOperator"]
