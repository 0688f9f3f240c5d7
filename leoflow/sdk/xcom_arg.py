"""XComArg: a reference to a task's output, usable as an argument and in ``>>``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from leoflow.sdk._errors import unsupported
from leoflow.sdk._graph import DependencyMixin

if TYPE_CHECKING:
    from leoflow.sdk.baseoperator import BaseOperator

RETURN_VALUE = "return_value"


class XComArg(DependencyMixin):
    """The output (``key``, ``return_value`` by default) of ``operator``."""

    def __init__(self, operator: BaseOperator, key: str = RETURN_VALUE) -> None:
        self.operator = operator
        self.key = key

    @property
    def roots(self) -> list[BaseOperator]:
        return [self.operator]

    @property
    def leaves(self) -> list[BaseOperator]:
        return [self.operator]

    def __getitem__(self, key: str) -> XComArg:
        return XComArg(self.operator, key)

    def __iter__(self) -> Any:
        # As Airflow: a misplaced `*output` or `for x in output` fails at once.
        raise TypeError(
            f"'XComArg' object is not iterable: the output of task {self.operator.task_id!r} "
            "exists only at run time; pass it whole to another task"
        )

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"XComArg(task_id={self.operator.task_id!r}, key={self.key!r})"

    def ref(self) -> dict[str, str]:
        """The spec's XComRef shape for this output."""
        return {"task_id": self.operator.task_id, "key": self.key}

    def map(self, *args: Any, **kwargs: Any) -> Any:
        raise unsupported("XComArg.map()", hint="use a list comprehension over task calls")

    def zip(self, *args: Any, **kwargs: Any) -> Any:
        raise unsupported("XComArg.zip()", hint="use a list comprehension over task calls")
