"""A DagSpec pre-digested for the decision loop: indices instead of ids, computed once."""

from __future__ import annotations

from dataclasses import dataclass

from leoflow.spec import DagSpec, TaskSpec, TriggerRule

_CACHE_MAX = 512


@dataclass(frozen=True, slots=True)
class CompiledDag:
    """Task order, edges, leaves and effective priority of one DagSpec, by task index."""

    spec: DagSpec
    tasks: tuple[TaskSpec, ...]  # topological order (upstream first, ties by task_id)
    index: dict[str, int]
    upstream: tuple[tuple[int, ...], ...]
    downstream: tuple[tuple[int, ...], ...]
    rules: tuple[TriggerRule, ...]
    leaves: tuple[int, ...]
    priority: tuple[int, ...]  # Airflow's default weight_rule "downstream"


_cache: dict[int | str, CompiledDag] = {}


def compile_dag(spec: DagSpec) -> CompiledDag:
    """The CompiledDag of ``spec``, memoised by content hash (else by object identity).

    A store that re-reads the same DAG version every tick gets new DagSpec objects with the same
    ``content_hash``: they share one entry.
    """
    key: int | str = spec.content_hash or id(spec)
    hit = _cache.get(key)
    if hit is not None and (hit.spec is spec or spec.content_hash):
        return hit
    compiled = _compile(spec)
    if len(_cache) >= _CACHE_MAX:
        _cache.clear()
    # An identity-keyed entry keeps ``spec`` alive, so its id cannot be reused while cached.
    _cache[key] = compiled
    return compiled


def _compile(spec: DagSpec) -> CompiledDag:
    order = spec.topological_order()
    index = {task_id: i for i, task_id in enumerate(order)}
    by_id = {t.task_id: t for t in spec.tasks}
    tasks = tuple(by_id[task_id] for task_id in order)
    upstream = tuple(tuple(sorted(index[u] for u in set(t.upstream))) for t in tasks)
    down: list[list[int]] = [[] for _ in tasks]
    for i, ups in enumerate(upstream):
        for u in ups:
            down[u].append(i)
    downstream = tuple(tuple(d) for d in down)
    leaves = tuple(i for i, d in enumerate(downstream) if not d)
    # Airflow's weight_rule "downstream": own weight plus every descendant's weight.
    descendants: list[set[int]] = [set() for _ in tasks]
    for i in reversed(range(len(tasks))):
        for d in downstream[i]:
            descendants[i].add(d)
            descendants[i] |= descendants[d]
    priority = tuple(
        tasks[i].priority_weight + sum(tasks[d].priority_weight for d in descendants[i])
        for i in range(len(tasks))
    )
    return CompiledDag(
        spec=spec,
        tasks=tasks,
        index=index,
        upstream=upstream,
        downstream=downstream,
        rules=tuple(t.trigger_rule for t in tasks),
        leaves=leaves,
        priority=priority,
    )
