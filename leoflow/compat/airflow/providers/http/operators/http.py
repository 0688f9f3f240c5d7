"""``airflow.providers.http.operators.http`` (SimpleHttpOperator is HttpOperator)."""

from leoflow.sdk import HttpOperator, SimpleHttpOperator

__all__ = ["HttpOperator", "SimpleHttpOperator"]
