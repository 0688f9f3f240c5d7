"""Overlay leoflow.yaml on the DAG that dag.py (or the ``dag:`` block) declared.

Precedence for each task field, highest first:

1. ``tasks.<task_id>`` in leoflow.yaml;
2. a value the author set explicitly on the task in dag.py (the probe's ``_explicit`` list);
3. ``defaults`` in leoflow.yaml;
4. what dag.py gave through ``default_args`` or the operator's built-in default.

``env`` is merged key by key instead: project ``env`` < ``defaults.env`` < the task's own env
< ``tasks.<task_id>.env``. DAG-level ``description``, ``owner`` and ``tags`` replace dag.py's
when leoflow.yaml sets them.
"""

from __future__ import annotations

from typing import Any

from leoflow.errors import ProjectError
from leoflow.project import LoadedProject, TaskOverride

# Fields a TaskOverride can carry besides env (which is merged, not replaced).
_OVERRIDE_FIELDS = tuple(name for name in TaskOverride.model_fields if name != "env")


def check_overrides(project: LoadedProject, task_ids: list[str], path: str) -> None:
    """Every ``tasks:`` key of leoflow.yaml must name a task of the DAG."""
    known = sorted(task_ids)
    for task_id in project.config.tasks:
        if task_id not in task_ids:
            raise ProjectError(
                f"{task_id!r} is not a task of this DAG",
                path=path,
                line=project.line_of("tasks", task_id),
                field=f"tasks.{task_id}",
                hint="known task ids: " + ", ".join(known),
            )


def apply_project(
    raw: dict[str, Any], explicit: dict[str, set[str]], project: LoadedProject
) -> dict[str, Any]:
    """A copy of ``raw`` with leoflow.yaml's settings applied.

    ``explicit`` maps task_id -> the fields the author set on that task in dag.py.
    """
    config = project.config
    out = dict(raw)
    if config.description is not None:
        out["description"] = config.description
    if config.owner is not None:
        out["owner"] = config.owner
    if config.tags is not None:
        out["tags"] = list(config.tags)
    out["tasks"] = [
        _apply_task(task, explicit.get(task["task_id"], set()), project) for task in raw["tasks"]
    ]
    return out


def _dump(value: Any) -> Any:
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value


def _apply_task(task: dict[str, Any], explicit: set[str], project: LoadedProject) -> dict[str, Any]:
    config = project.config
    defaults = config.defaults
    override = config.tasks.get(task["task_id"])
    out = dict(task)
    for name in _OVERRIDE_FIELDS:
        if override is not None and getattr(override, name) is not None:
            out[name] = _dump(getattr(override, name))
        elif name not in explicit and getattr(defaults, name) is not None:
            out[name] = _dump(getattr(defaults, name))
    env: dict[str, str] = {**config.env, **defaults.env, **(task.get("env") or {})}
    if override is not None:
        env.update(override.env)
    out["env"] = dict(sorted(env.items()))
    return out
