"""serialize_dag: the DagSpec JSON shape, validated by leoflow.spec for every feature."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from leoflow.sdk import (
    DAG,
    AuthoringError,
    BashOperator,
    EmptyOperator,
    HttpOperator,
    Param,
    PythonOperator,
    TaskGroup,
    dag,
    serialize_dag,
    task,
)
from leoflow.spec import TaskType


def _one_task(d: DAG) -> None:
    with d:
        EmptyOperator(task_id="e")


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("0 6 * * *", {"type": "cron", "expression": "0 6 * * *"}),
        ("@daily", {"type": "cron", "expression": "@daily"}),
        ("@once", {"type": "once"}),
        ("@continuous", {"type": "continuous"}),
        (timedelta(minutes=30), {"type": "delta", "seconds": 1800.0}),
        (None, None),
    ],
)
def test_schedules(to_spec, schedule, expected) -> None:
    d = DAG("s", schedule=schedule)
    _one_task(d)
    assert serialize_dag(d)["schedule"] == expected
    spec = to_spec(d)
    assert (spec.schedule.model_dump() if spec.schedule else None) == expected


def test_legacy_schedule_interval_and_default_none(to_spec) -> None:
    legacy = DAG("l", schedule_interval="@hourly")
    _one_task(legacy)
    assert serialize_dag(legacy)["schedule"] == {"type": "cron", "expression": "@hourly"}
    default = DAG("n")
    _one_task(default)
    assert serialize_dag(default)["schedule"] is None
    assert to_spec(legacy).schedule.expression == "@hourly"


def test_bad_schedule_is_an_error() -> None:
    with pytest.raises(AuthoringError, match="not a cron expression"):
        DAG("b", schedule="every day")
    with pytest.raises(AuthoringError, match="either schedule or schedule_interval"):
        DAG("b", schedule="@daily", schedule_interval="@daily")


def test_timezone_and_dates(to_spec) -> None:
    d = DAG(
        "tz",
        start_date=datetime(2024, 3, 1, 6, tzinfo=ZoneInfo("America/New_York")),
        end_date=datetime(2024, 12, 31),
    )
    _one_task(d)
    data = serialize_dag(d)
    assert data["timezone"] == "America/New_York"
    assert data["start_date"] == "2024-03-01T06:00:00-05:00"
    assert data["end_date"] == "2024-12-31T00:00:00+00:00"  # naive is UTC
    spec = to_spec(d)
    assert spec.start_date == datetime(2024, 3, 1, 11, tzinfo=UTC)
    naive = DAG("naive", start_date=datetime(2024, 1, 1))
    _one_task(naive)
    assert serialize_dag(naive)["timezone"] == "UTC"


def test_dag_level_fields(to_spec) -> None:
    d = DAG(
        "full",
        description="desc",
        doc_md="# doc",
        default_args={"owner": "ann", "start_date": datetime(2024, 1, 1)},
        tags={"z", "a"},
        catchup=True,
        max_active_runs=2,
        max_active_tasks=4,
        dagrun_timeout=timedelta(hours=1),
        is_paused_upon_creation=False,
        params={
            "n": Param(5, type="integer", minimum=1, title="Count", description="how many"),
            "req": Param(type="string"),
            "plain": [1, 2],
        },
    )
    _one_task(d)
    spec = to_spec(d)
    assert spec.owner == "ann" and spec.tags == ["a", "z"] and spec.catchup is True
    assert spec.description == "desc" and spec.doc_md == "# doc"
    assert (spec.max_active_runs, spec.max_active_tasks) == (2, 4)
    assert spec.dagrun_timeout_seconds == 3600.0 and spec.is_paused_upon_creation is False
    assert spec.start_date == datetime(2024, 1, 1, tzinfo=UTC)
    n = spec.params["n"]
    assert (n.default, n.has_default, n.title, n.description) == (5, True, "Count", "how many")
    assert n.schema_ == {"type": "integer", "minimum": 1, "title": "Count"}
    assert spec.params["req"].has_default is False and spec.params["req"].default is None
    assert spec.params["plain"].default == [1, 2] and spec.params["plain"].schema_ == {}
    assert serialize_dag(d)["_line"] > 0
    assert DAG("o").owner == "airflow"


def test_every_task_kind_validates_against_the_spec(to_spec) -> None:
    def py(x, y):
        return x

    with DAG("kinds", default_args={"retries": 1}) as d:

        @task(multiple_outputs=True)
        def produce() -> dict:
            return {"a": 1}

        @task.bash
        def cmd(v) -> str:
            return f"echo {v}"

        out = produce()
        b = BashOperator(task_id="b", bash_command="echo hi", env={"K": "V"}, retries=4)
        p = PythonOperator(task_id="p", python_callable=py, op_kwargs={"x": out["a"], "y": [out]})
        h = HttpOperator(
            task_id="h",
            http_conn_id="api",
            endpoint="/v1/x",
            method="get",
            headers={"A": "b"},
            data={"q": 1},
            extra_options={"timeout": 5},
        )
        with TaskGroup("g"):
            e = EmptyOperator(task_id="e")
        cmd(out) >> b >> [p, h] >> e
    spec = to_spec(d)
    assert {t.task_id: t.type for t in spec.tasks} == {
        "produce": TaskType.PYTHON,
        "cmd": TaskType.BASH,
        "b": TaskType.BASH,
        "p": TaskType.PYTHON,
        "h": TaskType.HTTP,
        "g.e": TaskType.EMPTY,
    }
    assert spec.task("produce").callable.endswith(".<locals>.produce")
    assert spec.task("cmd").operator == "BashOperator" and spec.task("cmd").bash_command is None
    assert spec.task("b").env == {"K": "V"} and spec.task("b").retries == 4
    assert spec.task("p").xcom_inputs["x"].key == "a"
    assert spec.task("p").fan_ins["y"].slots[0].ref.task_id == "produce"
    http = spec.task("h").http
    assert (http.method, http.http_conn_id, http.endpoint, http.timeout_seconds) == (
        "GET",
        "api",
        "/v1/x",
        5.0,
    )
    assert spec.task("g.e").task_group == "g" and spec.task("g.e").upstream == ["h", "p"]
    assert spec.task("g.e").line is not None
    assert d.get_task("produce").multiple_outputs is True
    explicit = {t["task_id"]: t["_explicit"] for t in serialize_dag(d)["tasks"]}
    assert explicit["b"] == ["env", "retries"] and explicit["g.e"] == []
    json.dumps(serialize_dag(d))  # plain JSON all the way down


def test_dag_decorator_defaults_and_validates(to_spec) -> None:
    @dag(schedule="@weekly", tags=["t"])
    def my_pipeline(size: int = 3):
        """Pipeline docs."""

        @task
        def one() -> int:
            return 1

        one()

    d = my_pipeline()
    assert d.dag_id == "my_pipeline" and d.doc_md == "Pipeline docs."
    spec = to_spec(d)
    assert spec.params["size"].default == 3
    assert spec.schedule.expression == "@weekly"
    assert serialize_dag(d)["_line"] == my_pipeline.__wrapped__.__code__.co_firstlineno
    named = dag("other_id")(lambda: EmptyOperator(task_id="e"))()
    assert named.dag_id == "other_id"


def test_get_task_unknown_id_lists_known_ids() -> None:
    d = DAG("g")
    _one_task(d)
    with pytest.raises(KeyError, match="known: \\['e'\\]"):
        d.get_task("nope")
