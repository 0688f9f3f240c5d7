"""``airflow.utils.task_group``."""

from leoflow.sdk import TaskGroup

__all__ = ["TaskGroup"]
