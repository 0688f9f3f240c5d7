"""Leoflow: write Airflow-style DAGs, compile them once, run every task in its own worker.

The authoring API lives here so that ``from leoflow import DAG, task`` works in a dag.py. It is
re-exported lazily from ``leoflow.sdk`` and needs nothing outside the standard library.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_SDK_NAMES = {
    "DAG",
    "dag",
    "task",
    "chain",
    "cross_downstream",
    "TaskGroup",
    "task_group",
    "Param",
    "Label",
    "XComArg",
    "BaseOperator",
    "PythonOperator",
    "BashOperator",
    "EmptyOperator",
    "HttpOperator",
    "TriggerRule",
}

__all__ = ["__version__", *sorted(_SDK_NAMES)]


def __getattr__(name: str) -> Any:
    if name in _SDK_NAMES:
        from leoflow import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'leoflow' has no attribute {name!r}")
