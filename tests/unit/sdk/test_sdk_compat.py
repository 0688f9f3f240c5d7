"""The `airflow` import-compatibility package resolves to leoflow.sdk, and nothing else."""

from __future__ import annotations

import importlib

import pytest

import leoflow.sdk as sdk
from leoflow.sdk import prepare_sys_path

PATHS = {
    "airflow": ["DAG"],
    "airflow.sdk": [
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
        "TriggerRule",
        "get_current_context",
    ],
    "airflow.decorators": ["dag", "task", "task_group"],
    "airflow.models": ["DAG", "BaseOperator", "Param"],
    "airflow.models.dag": ["DAG"],
    "airflow.models.param": ["Param"],
    "airflow.models.baseoperator": ["chain", "cross_downstream", "BaseOperator"],
    "airflow.providers.standard.operators.python": ["PythonOperator", "BranchPythonOperator"],
    "airflow.providers.standard.operators.bash": ["BashOperator"],
    "airflow.providers.standard.operators.empty": ["EmptyOperator"],
    "airflow.operators.python": ["PythonOperator", "ShortCircuitOperator"],
    "airflow.operators.bash": ["BashOperator"],
    "airflow.operators.empty": ["EmptyOperator"],
    "airflow.operators.dummy": ["DummyOperator", "EmptyOperator"],
    "airflow.operators.python_operator": ["PythonOperator"],
    "airflow.operators.bash_operator": ["BashOperator"],
    "airflow.operators.dummy_operator": ["DummyOperator"],
    "airflow.providers.http.operators.http": ["HttpOperator", "SimpleHttpOperator"],
    "airflow.utils.trigger_rule": ["TriggerRule"],
    "airflow.utils.task_group": ["TaskGroup"],
    "airflow.utils.edgemodifier": ["Label"],
}


@pytest.fixture
def compat(tmp_path) -> None:
    prepare_sys_path(tmp_path / "dag.py")


@pytest.mark.parametrize("module", sorted(PATHS))
def test_every_import_path_resolves_to_the_sdk(compat, module: str) -> None:
    mod = importlib.import_module(module)
    for name in PATHS[module]:
        assert getattr(mod, name) is getattr(sdk, name), f"{module}.{name}"


def test_aliases_and_helpers(compat) -> None:
    from airflow.operators.dummy import DummyOperator
    from airflow.providers.http.operators.http import SimpleHttpOperator
    from airflow.utils import timezone
    from airflow.utils.dates import days_ago

    assert DummyOperator is sdk.EmptyOperator and SimpleHttpOperator is sdk.HttpOperator
    assert days_ago(1) < timezone.utcnow()
    assert timezone.datetime(2024, 1, 1).tzinfo is timezone.utc


def test_compat_is_not_importable_without_the_probe_path() -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("airflow.sdk")


@pytest.mark.parametrize(
    "module", ["airflow.providers.amazon.aws.operators.s3", "airflow.models.variable"]
)
def test_anything_else_under_airflow_is_not_provided(compat, module: str) -> None:
    with pytest.raises(ModuleNotFoundError) as info:
        importlib.import_module(module)
    assert "Leoflow does not provide it" in str(info.value)
    assert info.value.name.startswith("airflow.")


def test_unknown_name_from_airflow_sdk(compat) -> None:
    with pytest.raises(ImportError, match="Asset"):
        exec("from airflow.sdk import Asset", {})
