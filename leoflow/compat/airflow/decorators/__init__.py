"""``airflow.decorators`` (Airflow 2 paths) backed by leoflow.sdk."""

from leoflow.sdk import dag, task, task_group

__all__ = ["dag", "task", "task_group"]
