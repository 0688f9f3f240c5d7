"""The per-spec digest used by decide(): order, edges, leaves, priority, memoisation."""

from __future__ import annotations

from sched_unit_helpers import dag, task

from leoflow.scheduler._graph import compile_dag
from leoflow.spec import finalize


def test_order_edges_leaves_and_downstream_priority() -> None:
    spec = dag(task("c", ["b"], priority_weight=5), task("b", ["a"]), task("a"), task("x"))
    g = compile_dag(spec)
    assert [t.task_id for t in g.tasks] == ["a", "b", "c", "x"]
    assert g.upstream == ((), (0,), (1,), ())
    assert g.downstream == ((1,), (2,), (), ())
    assert g.leaves == (2, 3)
    assert g.priority == (7, 6, 5, 1)  # own weight plus every descendant's


def test_memoised_by_content_hash_across_equal_objects() -> None:
    one = finalize(dag(task("a"), task("b", ["a"]), dag_id="memo"))
    two = finalize(dag(task("a"), task("b", ["a"]), dag_id="memo"))
    assert one is not two and one.content_hash == two.content_hash
    assert compile_dag(one) is compile_dag(two)


def test_unhashed_specs_are_memoised_by_identity_only() -> None:
    one = dag(task("a"), dag_id="nohash")
    two = dag(task("a"), task("b"), dag_id="nohash")
    assert compile_dag(one) is compile_dag(one)
    assert len(compile_dag(two).tasks) == 2
