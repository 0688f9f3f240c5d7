"""Dependencies: >>, <<, lists on either side, chain, cross_downstream, TaskGroup, Label."""

from __future__ import annotations

import pytest

from leoflow.sdk import (
    DAG,
    AuthoringError,
    EmptyOperator,
    Label,
    TaskGroup,
    chain,
    cross_downstream,
    task,
    task_group,
)


def ups(dag: DAG) -> dict[str, list[str]]:
    return {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks}


def _ops(*ids: str) -> list[EmptyOperator]:
    return [EmptyOperator(task_id=i) for i in ids]


def test_rshift_and_lshift_return_the_right_operand() -> None:
    with DAG("d") as dag:
        a, b, c, d = _ops("a", "b", "c", "d")
        assert (a >> b) is b
        b >> c
        assert (d << c) is c
    assert ups(dag) == {"a": [], "b": ["a"], "c": ["b"], "d": ["c"]}


def test_lists_on_either_side() -> None:
    with DAG("d") as dag:
        a, b, c, d, e = _ops("a", "b", "c", "d", "e")
        [a, b] >> c  # __rrshift__
        c >> [d, e]
    assert ups(dag)["c"] == ["a", "b"]
    assert ups(dag)["d"] == ["c"] and ups(dag)["e"] == ["c"]


def test_list_lshift_operator() -> None:
    with DAG("d") as dag:
        a, b, c, z = _ops("a", "b", "c", "z")
        c << [a, b]
        [a, b] << z
    assert ups(dag)["c"] == ["a", "b"]
    assert ups(dag)["a"] == ["z"] and ups(dag)["b"] == ["z"]


def test_set_upstream_and_downstream() -> None:
    with DAG("d") as dag:
        a, b, c = _ops("a", "b", "c")
        b.set_upstream(a)
        b.set_downstream([c])
    assert ups(dag) == {"a": [], "b": ["a"], "c": ["b"]}
    assert dag.get_task("a").downstream_task_ids == {"b"}


def test_chain_pairs_equal_lists_and_fans_single_items() -> None:
    with DAG("d") as dag:
        a, b1, b2, c1, c2, d = _ops("a", "b1", "b2", "c1", "c2", "d")
        chain(a, [b1, b2], [c1, c2], d)
    assert ups(dag) == {
        "a": [],
        "b1": ["a"],
        "b2": ["a"],
        "c1": ["b1"],
        "c2": ["b2"],
        "d": ["c1", "c2"],
    }


def test_chain_rejects_lists_of_different_length() -> None:
    with DAG("d"), pytest.raises(AuthoringError, match="different lengths"):
        a, b, c = _ops("a", "b", "c")
        chain([a, b], [c])


def test_cross_downstream() -> None:
    with DAG("d") as dag:
        a, b, c, d = _ops("a", "b", "c", "d")
        cross_downstream([a, b], [c, d])
    assert ups(dag)["c"] == ["a", "b"] and ups(dag)["d"] == ["a", "b"]


def test_xcomarg_shares_the_dependency_mixin() -> None:
    with DAG("d") as dag:

        @task
        def f() -> int:
            return 1

        out = f()
        e = EmptyOperator(task_id="e")
        out >> e
        [EmptyOperator(task_id="s")] >> out
    assert ups(dag) == {"f": ["s"], "e": ["f"], "s": []}


def test_label_passes_the_edge_through() -> None:
    with DAG("d") as dag:
        a, b, c = _ops("a", "b", "c")
        a >> Label("yes") >> b
        [a, b] >> Label("both") >> c
    assert ups(dag) == {"a": [], "b": ["a"], "c": ["a", "b"]}


def test_task_group_prefixes_ids_and_links_roots_and_leaves() -> None:
    with DAG("d") as dag:
        start, end = _ops("start", "end")
        with TaskGroup("grp") as grp:
            x = EmptyOperator(task_id="x")
            with TaskGroup("inner"):
                y = EmptyOperator(task_id="y")
            x >> y
        start >> grp >> end
    assert x.task_id == "grp.x" and y.task_id == "grp.inner.y"
    assert x.group_id == "grp" and y.group_id == "grp.inner"
    assert ups(dag)["grp.x"] == ["start"]
    assert ups(dag)["end"] == ["grp.inner.y"]


def test_task_group_without_prefix_and_duplicate_group_id() -> None:
    with DAG("d"):
        with TaskGroup("g", prefix_group_id=False):
            assert EmptyOperator(task_id="plain").task_id == "plain"
        with pytest.raises(AuthoringError, match="already used"):
            TaskGroup("g")


def test_task_group_decorator_suffixes_repeated_calls() -> None:
    with DAG("d") as dag:

        @task
        def step(n: int) -> int:
            return n

        @task_group
        def section(n: int):
            return step(n)

        first = section(1)
        second = section(2)
        first >> second
    assert dag.task_ids == ["section.step", "section__1.step"]
    assert ups(dag)["section__1.step"] == ["section.step"]


def test_operators_of_different_dags_cannot_be_linked() -> None:
    with DAG("one"):
        a = EmptyOperator(task_id="a")
    with DAG("two"):
        b = EmptyOperator(task_id="b")
    with pytest.raises(AuthoringError, match="cannot link"):
        a >> b


def test_dependency_on_a_non_task_is_an_error() -> None:
    with DAG("d"):
        a = EmptyOperator(task_id="a")
        with pytest.raises(AuthoringError, match="cannot set a dependency on str"):
            a >> "b"


def test_custom_operator_runs_its_execute_as_a_python_task(to_spec) -> None:
    from leoflow.sdk import BaseOperator

    class Greet(BaseOperator):
        def __init__(self, name: str, **kwargs) -> None:
            super().__init__(**kwargs)
            self.name = name

        def execute(self, context):
            return f"hi {self.name} on {context['ds']}"

    with DAG("custom") as dag:
        Greet(task_id="g", name="ann", retries=1)
    op = dag.get_task("g")
    assert op.python_callable(ds="2024-01-01", ti=None) == "hi ann on 2024-01-01"
    spec = to_spec(dag)
    assert spec.task("g").type == "python" and spec.task("g").operator == "Greet"
    assert spec.task("g").callable.endswith("Greet.execute")


def test_dag_argument_and_decorator_spellings() -> None:
    import leoflow

    the_dag = leoflow.DAG("explicit")
    a = EmptyOperator(task_id="a", dag=the_dag)
    b = EmptyOperator(task_id="b", dag=the_dag)
    a >> b
    with DAG("spellings") as dag:

        @leoflow.task()
        def one() -> int:
            return 1

        @task.python
        def two(x: int) -> int:
            return x

        @task.python(task_id="three")
        def three_fn(x: int) -> int:
            return x

        three_fn(two(one()))
    assert the_dag.get_task("b").upstream_task_ids == {"a"}
    assert dag.task_ids == ["one", "two", "three"]
    assert dag.get_task("three").upstream_task_ids == {"two"}
