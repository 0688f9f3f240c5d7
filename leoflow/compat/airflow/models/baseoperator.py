"""``airflow.models.baseoperator``."""

from leoflow.sdk import BaseOperator, chain, cross_downstream

__all__ = ["BaseOperator", "chain", "cross_downstream"]
