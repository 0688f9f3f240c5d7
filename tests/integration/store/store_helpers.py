"""Helpers shared by the store tests (a uniquely named module: test dirs share sys.path)."""

from __future__ import annotations

from leoflow.spec import DagSpec, TaskSpec, TaskType, finalize

SECRET = "test-secret-key-0123456789abcdef"


def make_spec(
    dag_id: str = "etl",
    edges: dict[str, list[str]] | None = None,
    *,
    retries: int = 0,
    tags: list[str] | None = None,
    owner: str = "airflow",
    description: str | None = None,
    version: str | None = None,
) -> DagSpec:
    """A small finalized spec: ``edges`` maps task_id -> upstream ids (default a->b->c)."""
    edges = edges if edges is not None else {"a": [], "b": ["a"], "c": ["b"]}
    tasks = [
        TaskSpec(
            task_id=t,
            type=TaskType.BASH,
            operator="BashOperator",
            bash_command=f"echo {t}",
            upstream=ups,
            retries=retries,
        )
        for t, ups in edges.items()
    ]
    spec = DagSpec(
        dag_id=dag_id,
        tasks=tasks,
        tags=tags or [],
        owner=owner,
        description=description,
        source=f"# {dag_id}\n",
    )
    return finalize(spec, version)
