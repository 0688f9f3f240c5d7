"""``airflow.models.dag``."""

from leoflow.sdk import DAG

__all__ = ["DAG"]
