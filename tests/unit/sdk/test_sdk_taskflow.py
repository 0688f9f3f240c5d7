"""TaskFlow and classic arguments: XCom inputs, call_args, fan-ins, ids, override, errors."""

from __future__ import annotations

from datetime import timedelta

import pytest

from leoflow.sdk import (
    DAG,
    AuthoringError,
    BashOperator,
    PythonOperator,
    TriggerRule,
    UnsupportedFeatureError,
    task,
)


def test_repeated_taskflow_calls_get_airflow_suffixes(load) -> None:
    dags = load(
        """
        from leoflow import DAG, task

        with DAG("mr"):
            @task
            def m(x):
                return x

            @task
            def reduce(parts):
                return sum(parts)

            reduce([m(x) for x in range(3)])
        """
    )
    d = dags["mr"]
    assert d.task_ids == ["m", "m__1", "m__2", "reduce"]
    fan = d.get_task("reduce").fan_ins["parts"]
    assert fan["shape"] == "list"
    assert [s["ref"]["task_id"] for s in fan["slots"]] == ["m", "m__1", "m__2"]
    assert d.get_task("m__2").call_args == {"x": 2}
    assert d.get_task("reduce").upstream_task_ids == {"m", "m__1", "m__2"}


def test_fan_in_keeps_literal_slots_in_order_for_list_tuple_and_dict() -> None:
    with DAG("d") as dag:

        @task
        def a() -> int:
            return 1

        @task
        def join(xs, ts, ds) -> None:
            return None

        x, y = a(), a()
        join([1, x, "two", y], (x, None), {"first": y, "lit": [1, 2]})
    fans = dag.get_task("join").fan_ins
    assert fans["xs"]["slots"] == [
        {"ref": None, "value": 1, "key": None},
        {"ref": {"task_id": "a", "key": "return_value"}, "value": None, "key": None},
        {"ref": None, "value": "two", "key": None},
        {"ref": {"task_id": "a__1", "key": "return_value"}, "value": None, "key": None},
    ]
    assert fans["ts"]["shape"] == "tuple" and fans["ts"]["slots"][1]["value"] is None
    assert fans["ds"] == {
        "shape": "dict",
        "slots": [
            {"ref": {"task_id": "a__1", "key": "return_value"}, "value": None, "key": "first"},
            {"ref": None, "value": [1, 2], "key": "lit"},
        ],
    }


def test_positional_and_keyword_arguments_bind_to_parameter_names() -> None:
    with DAG("d") as dag:

        @task
        def produce() -> dict:
            return {"a": 1}

        @task
        def consume(first, second, *, third=3, **extra) -> None:
            return None

        out = produce()
        consume(out, (1, 2), third=out["a"], other={"k": True})
    t = dag.get_task("consume")
    assert t.xcom_inputs == {
        "first": {"task_id": "produce", "key": "return_value"},
        "third": {"task_id": "produce", "key": "a"},
    }
    assert t.call_args == {"second": [1, 2], "other": {"k": True}}


def test_classic_output_and_op_args_become_xcom_inputs() -> None:
    def add(x, y=0):
        return x + y

    with DAG("d") as dag:
        b = BashOperator(task_id="b", bash_command="echo 1")
        p = PythonOperator(task_id="p", python_callable=add, op_args=[b.output], op_kwargs={"y": 2})
    assert p.xcom_inputs == {"x": {"task_id": "b", "key": "return_value"}}
    assert p.call_args == {"y": 2}
    assert dag.get_task("p").upstream_task_ids == {"b"}
    assert p.python_callable is add


def test_override_changes_id_and_policy_only_for_that_call() -> None:
    with DAG("d", default_args={"retries": 1}) as dag:

        @task(retries=2)
        def work() -> None:
            return None

        work()
        work.override(task_id="custom", retries=7, retry_delay=timedelta(seconds=5))()
        work()
    assert dag.task_ids == ["work", "custom", "work__1"]
    assert dag.get_task("custom").policy["retries"] == 7
    assert dag.get_task("custom").policy["retry_delay_seconds"] == 5.0
    assert dag.get_task("work__1").policy["retries"] == 2


def test_task_policy_arguments_and_explicit_fields() -> None:
    with DAG("d", default_args={"retries": 3, "pool": "p1", "owner": "ann"}) as dag:

        @task(
            retry_exponential_backoff=True,
            max_retry_delay=60,
            execution_timeout=timedelta(minutes=2),
            trigger_rule=TriggerRule.ONE_FAILED,
            pool_slots=2,
            priority_weight=9,
            doc_md="docs",
        )
        def t() -> None:
            return None

        t()
    op = dag.get_task("t")
    assert op.policy == {
        "retries": 3,
        "retry_delay_seconds": 300.0,
        "retry_exponential_backoff": True,
        "max_retry_delay_seconds": 60.0,
        "execution_timeout_seconds": 120.0,
        "trigger_rule": "one_failed",
        "pool": "p1",
        "pool_slots": 2,
        "priority_weight": 9,
        "doc_md": "docs",
    }
    assert op.explicit == {
        "retry_exponential_backoff",
        "max_retry_delay_seconds",
        "execution_timeout_seconds",
        "trigger_rule",
        "pool_slots",
        "priority_weight",
        "doc_md",
    }


@pytest.mark.parametrize("rule", [r.value for r in TriggerRule])
def test_every_airflow3_trigger_rule_is_accepted(rule: str) -> None:
    with DAG("d") as dag:
        BashOperator(task_id="b", bash_command="true", trigger_rule=rule)
    assert dag.get_task("b").policy["trigger_rule"] == rule
    assert len(TriggerRule) == 13


def test_bash_decorator_keeps_the_real_function() -> None:
    with DAG("d") as dag:

        @task.bash(env={"A": "1"})
        def say(word: str) -> str:
            return f"echo {word}"

        say("hi")
    op = dag.get_task("say")
    assert op.python_callable("x") == "echo x"
    assert op.task_type == "bash" and op.operator_name == "BashOperator"
    assert op.env == {"A": "1"} and op.call_args == {"word": "hi"}


def test_iterating_an_xcomarg_fails_at_once() -> None:
    with DAG("d"):

        @task
        def f() -> list:
            return []

        out = f()
        with pytest.raises(TypeError, match="not iterable"):
            list(out)


# -- errors, each naming file:line -------------------------------------------------------------


def _error(load, source: str) -> AuthoringError:
    with pytest.raises(AuthoringError) as info:
        load(source)
    return info.value


def test_duplicate_classic_task_id_names_the_line(load, line_of) -> None:
    src = """
    from airflow.operators.bash import BashOperator
    from airflow import DAG

    with DAG("d"):
        BashOperator(task_id="x", bash_command="true")
        BashOperator(task_id="x", bash_command="false")  # dup
    """
    err = _error(load, src)
    assert "duplicate task_id 'x'" in err.message
    assert err.line == line_of(src, "# dup") and err.path.endswith("dag.py")
    assert f"dag.py:{err.line}" in str(err)


def test_unknown_trigger_rule_names_the_line(load, line_of) -> None:
    src = """
    from airflow.sdk import DAG, task

    with DAG("d"):
        @task(trigger_rule="all_sucess")  # bad
        def f():
            return 1
    """
    err = _error(load, src)
    assert "unknown trigger_rule 'all_sucess'" in err.message
    assert "all_success" in err.hint
    assert err.line == line_of(src, "# bad")


def test_non_json_argument_names_param_task_and_line(load, line_of) -> None:
    src = """
    import datetime
    from airflow.sdk import DAG, task

    with DAG("d"):
        @task
        def f(when):
            return 1

        f(datetime.date(2024, 1, 1))  # here
    """
    err = _error(load, src)
    assert "argument 'when'" in err.message and "task 'f'" in err.message
    assert "DAG 'd'" in err.message and "date" in err.message
    assert "pass JSON values or another task's output" in err.hint
    assert err.line == line_of(src, "# here")


def test_nested_output_is_an_error(load, line_of) -> None:
    src = """
    from airflow.sdk import DAG, task

    with DAG("d"):
        @task
        def a():
            return 1

        @task
        def b(parts):
            return parts

        b([[a()]])  # nested
    """
    err = _error(load, src)
    assert "argument 'parts'" in err.message and "nests" in err.message
    assert err.line == line_of(src, "# nested")


def test_non_json_item_in_a_fan_in_is_an_error(load) -> None:
    err = _error(
        load,
        """
        from airflow.sdk import DAG, task

        with DAG("d"):
            @task
            def a():
                return 1

            @task
            def b(parts):
                return parts

            b([a(), object()])
        """,
    )
    assert "argument 'parts'" in err.message and "object" in err.message


@pytest.mark.parametrize(
    ("snippet", "feature"),
    [
        ("f.expand(x=[1, 2])", ".expand"),
        ("f.partial(x=1)", ".partial"),
        ("BashOperator.partial(task_id='b')", ".partial/.expand"),
    ],
)
def test_mapping_is_not_supported_with_a_hint(load, line_of, snippet: str, feature: str) -> None:
    src = f"""
    from airflow.sdk import DAG, task
    from airflow.operators.bash import BashOperator

    with DAG("d"):
        @task
        def f(x):
            return x

        {snippet}  # map
    """
    err = _error(load, src)
    assert isinstance(err, UnsupportedFeatureError)
    assert feature in err.message and "not supported yet" in err.message
    assert "list comprehension" in err.hint
    assert err.line == line_of(src, "# map")


def test_branch_decorator_is_not_supported(load, line_of) -> None:
    src = """
    from airflow.decorators import task, dag

    @dag
    def d():
        @task.branch  # branch
        def choose():
            return "a"

    d()
    """
    err = _error(load, src)
    assert "@task.branch" in err.message and "not supported yet" in err.message
    assert err.line == line_of(src, "# branch")


def test_task_outside_a_dag_is_an_error() -> None:
    @task
    def f() -> None:
        return None

    with pytest.raises(AuthoringError, match="outside a DAG"):
        f()


def test_unknown_operator_argument_is_an_error() -> None:
    with DAG("d"), pytest.raises(AuthoringError, match="unexpected argument"):
        BashOperator(task_id="b", bash_command="true", retires=3)


def test_tasks_made_by_a_helper_factory_report_the_dag_file_line(load, line_of, tmp_path) -> None:
    (tmp_path / "helpers.py").write_text(
        "from airflow.operators.bash import BashOperator\n"
        "\n"
        "def make(name):\n"
        "    return BashOperator(task_id=name, bash_command='true')\n"
    )
    src = """
    from airflow.sdk import DAG
    import helpers

    with DAG("d"):
        helpers.make("a")  # factory
    """
    dags = load(src)
    assert dags["d"].get_task("a").line == line_of(src, "# factory")
    assert dags["d"].get_task("a").path.endswith("dag.py")
