"""Pure builders for the grid and graph views: task trees, edges and aggregated cell states.

Task groups come from each task's ``task_group`` (the group's full, dotted id, as Airflow prefixes
it); a group appears where its first member appears in topological order, so the grid lists
upstream before downstream at every level, as Airflow's ``task_group_to_dict`` does.
"""

from __future__ import annotations

from typing import Any

from leoflow.spec import DagSpec, TaskSpec

# Airflow's ``State.state_priority``: the state a group (or mapped task) shows is its children's
# most urgent one.
STATE_PRIORITY: tuple[str | None, ...] = (
    "failed",
    "upstream_failed",
    "up_for_retry",
    "up_for_reschedule",
    "queued",
    "scheduled",
    "deferred",
    "running",
    "restarting",
    None,
    "success",
    "skipped",
    "removed",
)


def group_chain(group: str | None, known: set[str]) -> list[str]:
    """The groups enclosing a task, outermost first (dotted prefixes that are groups too)."""
    if not group:
        return []
    parts = group.split(".")
    chain = [".".join(parts[: i + 1]) for i in range(len(parts) - 1)]
    return [g for g in chain if g in known] + [group]


def task_groups(spec: DagSpec) -> set[str]:
    """Every group id the spec's tasks name, with their dotted parent groups."""
    groups: set[str] = set()
    for task in spec.tasks:
        if task.task_group:
            parts = task.task_group.split(".")
            groups.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return groups


def _label(node_id: str, parent: str | None) -> str:
    prefix = f"{parent}."
    return node_id[len(prefix) :] if parent and node_id.startswith(prefix) else node_id


def _tree(spec: DagSpec, leaf: Any, group: Any) -> list[dict[str, Any]]:
    """Nest ``leaf(task, parent)`` nodes under ``group(gid, parent)`` nodes, topologically."""
    known = task_groups(spec)
    roots: list[dict[str, Any]] = []
    made: dict[str, dict[str, Any]] = {}
    for task_id in spec.topological_order():
        task = spec.task(task_id)
        siblings, parent = roots, None
        for gid in group_chain(task.task_group, known):
            node = made.get(gid)
            if node is None:
                node = made[gid] = group(gid, parent)
                siblings.append(node)
            siblings, parent = node["children"], gid
        siblings.append(leaf(task, parent))
    return roots


def grid_structure(spec: DagSpec) -> list[dict[str, Any]]:
    """GridNodeResponse list: tasks in topological order, groups with their children."""

    def leaf(task: TaskSpec, parent: str | None) -> dict[str, Any]:
        return {"id": task.task_id, "label": _label(task.task_id, parent), "is_mapped": False}

    def group(gid: str, parent: str | None) -> dict[str, Any]:
        return {"id": gid, "label": _label(gid, parent), "is_mapped": False, "children": []}

    return _tree(spec, leaf, group)


def node_ids(nodes: list[dict[str, Any]]) -> list[str]:
    """Every id in a node tree, depth first."""
    out: list[str] = []
    for node in nodes:
        out.append(node["id"])
        out += node_ids(node.get("children") or [])
    return out


def structure_nodes(spec: DagSpec) -> list[dict[str, Any]]:
    """NodeResponse list for the graph: tasks with their operator, groups with children."""

    def leaf(task: TaskSpec, parent: str | None) -> dict[str, Any]:
        return {
            "id": task.task_id,
            "label": _label(task.task_id, parent),
            "type": "task",
            "children": None,
            "is_mapped": None,
            "tooltip": None,
            "setup_teardown_type": None,
            "operator": task.operator,
            "asset_condition_type": None,
        }

    def group(gid: str, parent: str | None) -> dict[str, Any]:
        return {
            "id": gid,
            "label": _label(gid, parent),
            "type": "task",
            "children": [],
            "is_mapped": None,
            "tooltip": None,
            "setup_teardown_type": None,
            "operator": None,
            "asset_condition_type": None,
        }

    return _tree(spec, leaf, group)


def structure_edges(spec: DagSpec) -> list[dict[str, Any]]:
    """EdgeResponse list: one edge per upstream relation, sorted."""
    return [
        {
            "source_id": up,
            "target_id": task.task_id,
            "is_setup_teardown": None,
            "label": None,
            "is_source_asset": None,
        }
        for task in spec.tasks
        for up in sorted(task.upstream)
    ]


def group_members(spec: DagSpec) -> dict[str, list[str]]:
    """Group id -> every task id inside it (nested groups included)."""
    known = task_groups(spec)
    members: dict[str, list[str]] = {g: [] for g in known}
    for task in spec.tasks:
        for gid in group_chain(task.task_group, known):
            members[gid].append(task.task_id)
    return members
