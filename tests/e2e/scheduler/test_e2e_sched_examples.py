"""Every project in examples/ pushed, triggered and checked through the API (process executor)."""

from __future__ import annotations

import math

import pytest

from tests.e2e.scheduler.conftest import EXAMPLES, Api

pytestmark = pytest.mark.slow


def _run_example(api: Api, name: str) -> str:
    spec = api.push_project(EXAMPLES / name)
    assert spec.dag_id == name
    api.trigger(name, "e2e1")
    return api.wait_run(name, "e2e1")["state"]


def test_hello_chain_passes_its_greeting_along(api: Api) -> None:
    assert _run_example(api, "hello") == "success"
    assert api.states("hello", "e2e1") == {
        "greet": "success",
        "shout": "success",
        "show": "success",
    }
    assert api.xcom("hello", "e2e1", "greet") == "Hello, Leoflow!"
    assert api.xcom("hello", "e2e1", "shout") == "HELLO, LEOFLOW!"
    assert "HELLO, LEOFLOW!" in api.log_lines("hello", "e2e1", "show", 1)


def test_etl_moves_data_through_bash_python_operator_and_taskflow(api: Api) -> None:
    assert _run_example(api, "etl") == "success"
    states = api.states("etl", "e2e1")
    assert states == dict.fromkeys(("extract", "parse", "transform", "load", "report"), "success")
    rows = [{"city": "Paris", "temp_c": 21.5}, {"city": "Oslo", "temp_c": 12.0}]
    # BashOperator pushes its last stdout line; parse keeps readings >= 5 C.
    assert api.xcom("etl", "e2e1", "parse") == rows
    # leoflow.yaml's env sets REPORT_UNIT=F for every task.
    assert api.xcom("etl", "e2e1", "transform") == [
        {**row, "temp": row["temp_c"] * 9 / 5 + 32, "unit": "F"} for row in rows
    ]
    assert api.xcom("etl", "e2e1", "load") == 2
    # The task's own env (TARGET_TABLE) wins over the yaml's for report.
    assert api.xcom("etl", "e2e1", "report") == "report for weather_daily is ready"
    load_log = api.log_lines("etl", "e2e1", "load", 1)
    assert "INSERT INTO weather_daily VALUES ('Paris', 70.7)" in load_log


def _toy_loss(lr: float, epochs: int = 20, noise: float = 0.05) -> float:
    progress = 1 - math.exp(-lr * epochs * 50)
    return round(1 - progress + max(0.0, lr - 0.02) * 10 + noise, 6)


def test_ml_hparam_search_reduces_the_trials_in_order(api: Api) -> None:
    assert _run_example(api, "ml_hparam_search") == "success"
    rates = [0.001, 0.003, 0.01, 0.03, 0.1]
    trials = ["trial", *(f"trial__{i}" for i in range(1, 5))]
    assert set(api.states("ml_hparam_search", "e2e1").values()) == {"success"}
    assert api.xcom("ml_hparam_search", "e2e1", "prepare_data") == {"samples": 2000, "noise": 0.05}
    for task_id, lr in zip(trials, rates, strict=True):
        assert api.xcom("ml_hparam_search", "e2e1", task_id) == {"lr": lr, "loss": _toy_loss(lr)}
    best = min(rates, key=_toy_loss)
    assert api.xcom("ml_hparam_search", "e2e1", "select_best") == {
        "lr": best,
        "loss": _toy_loss(best),
    }


def test_branching_fails_on_purpose_and_trigger_rules_decide_the_rest(api: Api) -> None:
    # A leaf (publish) ends upstream_failed, so Airflow marks the run failed.
    assert _run_example(api, "branching") == "failed"
    assert api.states("branching", "e2e1") == {
        "start": "success",
        "healthy": "success",
        "flaky": "failed",
        "alert": "success",  # one_failed
        "publish": "upstream_failed",  # none_failed with a failed upstream
        "cleanup": "success",  # all_done
        "summary": "success",  # none_failed_min_one_success below healthy only
        "end": "success",  # always
    }
    assert api.xcom("branching", "e2e1", "healthy") == "ok"
    flaky_log = "\n".join(api.log_lines("branching", "e2e1", "flaky", 1))
    assert "this task fails on purpose" in flaky_log


def test_yaml_pipeline_fans_in_the_shard_counts(api: Api) -> None:
    # Its tasks live in steps.py, which a pushed spec does not carry: bundle it as Lite does.
    api.push_project_with_bundle(EXAMPLES / "yaml_pipeline")
    api.trigger("yaml_pipeline", "e2e1")
    # Its tasks retry for 30 s: stop at the first failed try and show why, not at the deadline.
    run, tis = api.wait_for(
        lambda: (api.run("yaml_pipeline", "e2e1"), api.tis("yaml_pipeline", "e2e1")),
        lambda got: (
            got[0]["state"] in ("success", "failed")
            or any(ti["state"] in ("up_for_retry", "failed") for ti in got[1].values())
        ),
        60,
        "yaml_pipeline to finish or fail a try",
    )
    broken = sorted(k[0] for k, ti in tis.items() if ti["state"] in ("up_for_retry", "failed"))
    for task_id in broken:
        log = api.log_lines("yaml_pipeline", "e2e1", task_id, 1)
        raise AssertionError(f"{task_id} failed its first try: {log[-1] if log else 'no log'}")
    assert run["state"] == "success"
    states = {k[0]: ti["state"] for k, ti in tis.items()}
    assert set(states) == {"start", "shard_a", "shard_b", "shard_c", "combine", "announce"}
    assert set(states.values()) == {"success"}
    for task_id, count in (("shard_a", 10), ("shard_b", 20), ("shard_c", 30)):
        assert api.xcom("yaml_pipeline", "e2e1", task_id) == count
    assert api.xcom("yaml_pipeline", "e2e1", "combine") == 60
    assert api.xcom("yaml_pipeline", "e2e1", "announce") == "pipeline finished"
