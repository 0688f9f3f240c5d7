"""``airflow.models`` (the authoring names only) backed by leoflow.sdk."""

from leoflow.sdk import DAG, BaseOperator, Param

__all__ = ["DAG", "BaseOperator", "Param"]
