"""Serializer output is accepted by the official client's models (the shape contract), pure."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from airflow_client.client.models.dag_details_response import DAGDetailsResponse
from airflow_client.client.models.dag_response import DAGResponse
from airflow_client.client.models.dag_run_response import DAGRunResponse
from airflow_client.client.models.dag_version_response import DagVersionResponse
from airflow_client.client.models.task_instance_history_response import (
    TaskInstanceHistoryResponse,
)
from airflow_client.client.models.task_instance_response import TaskInstanceResponse
from airflow_client.client.models.task_response import TaskResponse

from leoflow.server.serializers import (
    dag_details_response,
    dag_response,
    dag_run_response,
    dag_version_response,
    iso,
    task_instance_history_response,
    task_instance_response,
    task_response,
    time_delta,
)
from leoflow.spec import DagSpec
from leoflow.store.api import (
    Dag,
    DagRun,
    DagRunState,
    DagRunType,
    DagVersion,
    TaskInstance,
    TaskInstanceTry,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
SPEC = DagSpec.model_validate(
    {
        "dag_id": "etl",
        "schedule": {"type": "cron", "expression": "0 * * * *"},
        "params": {"n": {"default": 1, "schema": {"type": "integer"}}},
        "tasks": [
            {"task_id": "a", "type": "bash", "operator": "BashOperator", "bash_command": "echo"},
            {"task_id": "b", "type": "empty", "operator": "EmptyOperator", "upstream": ["a"],
             "execution_timeout_seconds": 90.5},
        ],
    }
)  # fmt: skip
VERSION = DagVersion(uuid4(), "default", "etl", 1, "h123", "abc", None, NOW, "admin")
DAG = Dag(
    id=1, tenant="default", dag_id="etl", is_paused=False, is_stale=False, description=None,
    owner="airflow", tags=["x"], schedule={"type": "cron", "expression": "0 * * * *"},
    timetable_summary="0 * * * *", timezone="UTC", start_date=None, end_date=None, catchup=False,
    max_active_runs=16, max_active_tasks=16, fileloc="etl/dag.py", current_version_id=VERSION.id,
    current_version_number=1, current_version_label="h123", content_hash="abc",
    last_parsed_time=NOW, next_dagrun_logical_date=None, next_dagrun_data_interval_start=None,
    next_dagrun_data_interval_end=None, next_dagrun_run_after=None, has_import_errors=False,
    created_at=NOW, updated_at=NOW,
)  # fmt: skip
RUN = DagRun(
    id=1, tenant="default", dag_id="etl", run_id="manual__1", dag_version_id=VERSION.id,
    version_number=1, state=DagRunState.RUNNING, run_type=DagRunType.MANUAL, logical_date=None,
    data_interval_start=None, data_interval_end=None, run_after=NOW, conf={"n": 2}, note=None,
    triggered_by="rest_api", triggering_user_name="admin", queued_at=NOW, start_date=NOW,
    end_date=None, last_scheduling_decision=None, clear_number=0, updated_at=NOW,
)  # fmt: skip
TI = TaskInstance(
    id=uuid4(), tenant="default", dag_id="etl", run_id="manual__1", dag_run_id=1,
    dag_version_id=VERSION.id, task_id="a", map_index=-1, state=None, try_number=0, max_tries=0,
    start_date=None, end_date=None, duration=None, queued_dttm=None, scheduled_dttm=None,
    next_retry_at=None, hostname=None, pid=None, executor=None, external_executor_id=None,
    pool="default_pool", pool_slots=1, queue="default", priority_weight=1, operator="BashOperator",
    note=None, last_heartbeat_at=None, rendered_fields={}, logical_date=None, run_after=NOW,
    updated_at=NOW,
)  # fmt: skip


def test_iso_and_timedelta_forms() -> None:
    assert iso(NOW) == "2026-01-02T03:04:05Z"
    assert time_delta(90.5) == {
        "__type": "TimeDelta",
        "days": 0,
        "seconds": 90,
        "microseconds": 500000,
    }


def test_dag_shapes() -> None:
    version = dag_version_response(VERSION)
    assert DagVersionResponse.from_dict(version).version_number == 1
    assert DAGResponse.from_dict(dag_response(DAG)).timetable_summary == "0 * * * *"
    details = DAGDetailsResponse.from_dict(dag_details_response(DAG, SPEC, version))
    assert details.params == {
        "n": {
            "value": 1,
            "schema": {"type": "integer"},
            "description": None,
            "title": None,
            "__class": "airflow.sdk.definitions.param.Param",
        }
    }
    assert details.latest_dag_version.bundle_version == "h123"


def test_task_shape_has_downstream_ids() -> None:
    task = TaskResponse.from_dict(task_response(SPEC, SPEC.task("a")))
    assert task.downstream_task_ids == ["b"]
    assert task.retry_delay.seconds == 300


def test_run_and_task_instance_shapes() -> None:
    version = dag_version_response(VERSION)
    run = DAGRunResponse.from_dict(dag_run_response(RUN, version, NOW))
    assert run.conf == {"n": 2} and run.dag_versions[0].dag_id == "etl"
    ti = TaskInstanceResponse.from_dict(task_instance_response(TI, version, NOW))
    assert ti.state is None and ti.map_index == -1
    try_ = TaskInstanceTry(
        ti_id=TI.id, dag_id="etl", run_id="manual__1", task_id="a", map_index=-1, try_number=1,
        state=None, max_tries=0, start_date=None, end_date=None, duration=None, queued_dttm=None,
        scheduled_dttm=None, hostname=None, pid=None, executor=None, pool="default_pool",
        pool_slots=1, queue="default", priority_weight=1, operator=None, dag_version_id=VERSION.id,
    )  # fmt: skip
    assert (
        TaskInstanceHistoryResponse.from_dict(
            task_instance_history_response(try_, version, NOW)
        ).try_number
        == 1
    )
