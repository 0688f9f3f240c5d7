"""The authoring SDK: what a dag.py calls (DAG, @task, operators, >>, TaskGroup, Param...).

Pure standard library and self-contained: it runs inside every DAG's own venv, at compile
time (recording the graph for ``serialize_dag``) and at run time (``load_dags`` then
``DAG.get_task(task_id).python_callable`` gives the runner the real function).
"""

from __future__ import annotations

from leoflow.sdk._context import get_current_context, set_current_context
from leoflow.sdk._errors import AuthoringError, UnsupportedFeatureError
from leoflow.sdk._graph import DependencyMixin, Label, chain, cross_downstream
from leoflow.sdk.baseoperator import BaseOperator
from leoflow.sdk.dag import DAG, Param, dag
from leoflow.sdk.decorators import task
from leoflow.sdk.loader import COMPAT_DIR, load_dags, prepare_sys_path
from leoflow.sdk.operators import (
    BashOperator,
    BranchPythonOperator,
    DummyOperator,
    EmptyOperator,
    HttpOperator,
    PythonOperator,
    PythonVirtualenvOperator,
    ShortCircuitOperator,
    SimpleHttpOperator,
)
from leoflow.sdk.serialize import serialize_dag, serialize_task
from leoflow.sdk.taskgroup import TaskGroup, task_group
from leoflow.sdk.trigger_rule import TriggerRule
from leoflow.sdk.xcom_arg import XComArg

__all__ = [
    "COMPAT_DIR",
    "DAG",
    "AuthoringError",
    "BaseOperator",
    "BashOperator",
    "BranchPythonOperator",
    "DependencyMixin",
    "DummyOperator",
    "EmptyOperator",
    "HttpOperator",
    "Label",
    "Param",
    "PythonOperator",
    "PythonVirtualenvOperator",
    "ShortCircuitOperator",
    "SimpleHttpOperator",
    "TaskGroup",
    "TriggerRule",
    "UnsupportedFeatureError",
    "XComArg",
    "chain",
    "cross_downstream",
    "dag",
    "get_current_context",
    "load_dags",
    "prepare_sys_path",
    "serialize_dag",
    "serialize_task",
    "set_current_context",
    "task",
    "task_group",
]
