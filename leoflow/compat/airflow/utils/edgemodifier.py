"""``airflow.utils.edgemodifier``."""

from leoflow.sdk import Label

__all__ = ["Label"]
