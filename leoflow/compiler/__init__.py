"""dag.py (or a declarative ``dag:`` block) + leoflow.yaml -> a validated, finalized DagSpec.

``compile_project(root)`` is the whole pipeline: load leoflow.yaml, capture the DAG (running
dag.py once in a throw-away subprocess, see ``probe``), pick the DAG, apply leoflow.yaml's
overrides, check the graph, and stamp the content hash. It never imports user code itself.

Names are resolved lazily: ``python -m leoflow.compiler.probe`` imports this package, and the
probe process must stay light (no pydantic, no yaml) to keep compiles fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from leoflow.compiler.pipeline import CompileResult, compile_project

__all__ = ["CompileResult", "compile_project"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from leoflow.compiler import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'leoflow.compiler' has no attribute {name!r}")
