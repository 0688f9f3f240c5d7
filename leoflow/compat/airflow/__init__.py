"""Import compatibility: ``import airflow`` resolves to Leoflow's authoring SDK.

This package is put on sys.path (its parent, ``leoflow/compat``) only by the compile-time probe
and the task runner; it is never installed as a top-level ``airflow``. Only the authoring API
is provided; importing any other ``airflow.*`` module fails with a ModuleNotFoundError saying so.
"""

from __future__ import annotations

import sys
from importlib.abc import MetaPathFinder
from typing import Any

from leoflow.sdk import DAG, Param, XComArg

__version__ = "3.0.0+leoflow"
__all__ = ["DAG", "Param", "XComArg"]


class _NotProvidedFinder(MetaPathFinder):
    """Last on sys.meta_path: an ``airflow.*`` module nobody else found is not provided."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname.startswith("airflow."):
            raise ModuleNotFoundError(
                f"No module named {fullname!r}: Leoflow does not provide it (only Airflow's "
                "authoring API: airflow.sdk, airflow.decorators, the standard and HTTP "
                "operators, airflow.utils.trigger_rule...)",
                name=fullname,
            )
        return None


if not any(isinstance(f, _NotProvidedFinder) for f in sys.meta_path):
    sys.meta_path.append(_NotProvidedFinder())
