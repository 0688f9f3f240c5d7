"""``airflow.models.param``."""

from leoflow.sdk import Param

__all__ = ["Param"]
