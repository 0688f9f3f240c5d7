"""``airflow.utils.trigger_rule``."""

from leoflow.sdk import TriggerRule

__all__ = ["TriggerRule"]
