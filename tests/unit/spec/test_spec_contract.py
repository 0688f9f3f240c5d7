"""The dag.json contract: validation, canonical form, hashing, round trips."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from leoflow import spec
from leoflow.errors import SpecError


def _task(task_id: str, **kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "task_id": task_id,
        "type": "python",
        "operator": "PythonOperator",
        "callable": f"dag:{task_id}",
    }
    base.update(kw)
    return base


def _dag(*tasks: dict[str, object], **kw: object) -> spec.DagSpec:
    return spec.DagSpec.model_validate({"dag_id": "d", "tasks": list(tasks), **kw})


def test_minimal_spec_gets_airflow_defaults() -> None:
    d = _dag(_task("a"))
    t = d.task("a")
    assert t.trigger_rule is spec.TriggerRule.ALL_SUCCESS
    assert t.retries == 0 and t.retry_delay_seconds == 300 and t.pool == "default_pool"
    assert d.max_active_runs == 16 and d.catchup is False and d.timezone == "UTC"


def test_finalize_is_deterministic_and_order_independent() -> None:
    a = _dag(_task("b", upstream=["a"]), _task("a"), tags=["y", "x", "y"])
    b = _dag(_task("a"), _task("b", upstream=["a"]), tags=["x", "y"])
    fa, fb = spec.finalize(a), spec.finalize(b)
    assert spec.dumps(fa) == spec.dumps(fb)
    assert fa.content_hash == fb.content_hash and len(fa.content_hash) == 64
    assert fa.version == "h" + fa.content_hash[:12]
    assert [t.task_id for t in fa.tasks] == ["a", "b"] and fa.tags == ["x", "y"]


def test_version_label_does_not_change_the_hash() -> None:
    d = _dag(_task("a"))
    assert spec.finalize(d, "v1").content_hash == spec.finalize(d, "v2").content_hash
    assert spec.finalize(d, "v1").version == "v1"


def test_any_content_change_changes_the_hash() -> None:
    base = spec.finalize(_dag(_task("a")))
    changed = spec.finalize(_dag(_task("a", retries=1)))
    assert base.content_hash != changed.content_hash


def test_round_trip_through_file_form() -> None:
    d = spec.finalize(
        _dag(
            _task("m", call_args={"x": 1}),
            _task("m__1", call_args={"x": 2}),
            _task(
                "r",
                upstream=["m", "m__1"],
                fan_ins={
                    "parts": {
                        "shape": "list",
                        "slots": [
                            {"ref": {"task_id": "m"}},
                            {"value": 7},
                            {"ref": {"task_id": "m__1"}},
                        ],
                    }
                },
            ),
            schedule={"type": "cron", "expression": "@daily"},
            start_date="2024-01-01T00:00:00+00:00",
            params={"n": {"default": 3, "schema": {"type": "integer"}}},
        )
    )
    text = spec.dumps(d)
    again = spec.loads(text)
    assert again == d
    assert spec.dumps(again) == text
    assert text.endswith("\n") and json.loads(text)["schema_version"] == "1.0"
    assert again.start_date == datetime(2024, 1, 1, tzinfo=UTC)
    assert again.params["n"].schema_ == {"type": "integer"}


@pytest.mark.parametrize(
    ("tasks", "message"),
    [
        ([_task("a"), _task("a")], "duplicate task ids"),
        ([_task("a", upstream=["zz"])], "unknown task"),
        ([_task("a", upstream=["b"]), _task("b", upstream=["a"])], "cycle"),
        ([_task("a b")], "invalid task_id"),
        ([_task("a", xcom_inputs={"x": {"task_id": "b"}}), _task("b")], "not listed upstream"),
        ([_task("a", callable=None)], "needs a callable"),
        ([_task("a", trigger_rule="sometimes")], "trigger_rule"),
    ],
)
def test_invalid_graphs_are_refused(tasks: list[dict[str, object]], message: str) -> None:
    with pytest.raises(SpecError) as info:
        spec.loads(json.dumps({"dag_id": "d", "tasks": tasks}))
    assert message in str(info.value)


def test_cycle_is_reported_in_order() -> None:
    assert spec.find_cycle({"a": ["c"], "b": ["a"], "c": ["b"]}) == ["a", "b", "c", "a"]
    assert spec.find_cycle({"a": [], "b": ["a"]}) is None


def test_topological_order_breaks_ties_alphabetically() -> None:
    order = spec.topological_order({"c": [], "b": [], "a": ["c"], "d": ["a", "b"]})
    assert order == ["b", "c", "a", "d"]


def test_loads_names_the_field_and_refuses_edits() -> None:
    with pytest.raises(SpecError) as info:
        spec.loads('{"dag_id": "d", "tasks": [{"task_id": "a", "type": "nope"}]}')
    assert info.value.field is not None and info.value.field.startswith("tasks.0")
    text = spec.dumps(spec.finalize(_dag(_task("a"))))
    tampered = text.replace('"retries": 0', '"retries": 5')
    with pytest.raises(SpecError, match="content_hash"):
        spec.loads(tampered)
    with pytest.raises(SpecError, match="schema_version"):
        spec.loads('{"schema_version": "9", "dag_id": "d", "tasks": []}')
    with pytest.raises(SpecError) as bad:
        spec.loads("{not json")
    assert bad.value.line == 1


def test_naive_dates_are_refused() -> None:
    with pytest.raises(SpecError, match="timezone"):
        spec.loads(
            json.dumps({"dag_id": "d", "start_date": "2024-01-01T00:00:00", "tasks": [_task("a")]})
        )


def test_json_schema_is_generated() -> None:
    schema = spec.json_schema()
    assert schema["$schema"].endswith("2020-12/schema")
    assert "tasks" in schema["required"]


def test_the_image_is_not_part_of_the_content_hash() -> None:
    d = spec.finalize(_dag(_task("a")))
    pushed = spec.finalize(
        d.model_copy(update={"runtime": spec.Runtime(image="reg/x@sha256:" + "0" * 64)})
    )
    assert pushed.content_hash == d.content_hash
    assert pushed.runtime.image is not None and spec.loads(spec.dumps(pushed)) == pushed
