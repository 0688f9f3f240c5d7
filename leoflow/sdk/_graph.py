"""The dependency mixin shared by operators, XComArg and TaskGroup: ``>>``, ``<<``, chain.

``a >> b`` makes every leaf of ``a`` an upstream of every root of ``b``. Lists work on either
side (``[a, b] >> c`` through ``__rrshift__``), and a ``Label`` between two sides is accepted
and passes the edge through (the label text itself is not kept).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from leoflow.sdk._errors import fail

if TYPE_CHECKING:
    from leoflow.sdk.baseoperator import BaseOperator


class DependencyMixin:
    """Anything that can sit on either side of ``>>`` and ``<<``."""

    @property
    def roots(self) -> list[BaseOperator]:
        """The operators an edge into this object attaches to."""
        raise NotImplementedError

    @property
    def leaves(self) -> list[BaseOperator]:
        """The operators an edge out of this object starts from."""
        raise NotImplementedError

    def set_upstream(self, other: Any) -> None:
        """Make ``other`` (an operator, XComArg, group or list of them) run before this."""
        link(other, self)

    def set_downstream(self, other: Any) -> None:
        """Make ``other`` run after this."""
        link(self, other)

    def __rshift__(self, other: Any) -> Any:
        link(self, other)
        return other

    def __lshift__(self, other: Any) -> Any:
        link(other, self)
        return other

    def __rrshift__(self, other: Any) -> Any:
        # `[a, b] >> self`: the list has no __rshift__, so Python asks us.
        link(other, self)
        return self

    def __rlshift__(self, other: Any) -> Any:
        link(self, other)
        return self


class Label(DependencyMixin):
    """An edge label (``a >> Label("on success") >> b``); the edge is kept, the text ignored."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._ups: list[Any] = []
        self._downs: list[Any] = []

    @property
    def roots(self) -> list[BaseOperator]:
        return [op for d in self._downs for op in _roots(d)]

    @property
    def leaves(self) -> list[BaseOperator]:
        return [op for u in self._ups for op in _leaves(u)]

    def _add_up(self, other: Any) -> None:
        self._ups.append(other)
        for down in self._downs:
            link(other, down)

    def _add_down(self, other: Any) -> None:
        self._downs.append(other)
        for up in self._ups:
            link(up, other)


def _items(obj: Any) -> list[Any]:
    if isinstance(obj, (list, tuple, set)):
        return list(obj)
    return [obj]


def _check(obj: Any) -> DependencyMixin:
    if not isinstance(obj, DependencyMixin):
        raise fail(
            f"cannot set a dependency on {type(obj).__name__} {obj!r}",
            hint="use >> and << between tasks, task outputs, task groups or lists of them",
        )
    return obj


def _roots(obj: Any) -> list[BaseOperator]:
    return [op for item in _items(obj) for op in _check(item).roots]


def _leaves(obj: Any) -> list[BaseOperator]:
    return [op for item in _items(obj) for op in _check(item).leaves]


def link(upstream: Any, downstream: Any) -> None:
    """Make every leaf of ``upstream`` an upstream of every root of ``downstream``."""
    ups = _items(upstream)
    downs = _items(downstream)
    for up in ups:
        if isinstance(_check(up), Label):
            for down in downs:
                up._add_down(down)
    for down in downs:
        if isinstance(_check(down), Label):
            for up in ups:
                down._add_up(up)
    plain_ups = [u for u in ups if not isinstance(u, Label)]
    plain_downs = [d for d in downs if not isinstance(d, Label)]
    for up_op in _leaves(plain_ups):
        for down_op in _roots(plain_downs):
            down_op._add_upstream(up_op)


def chain(*tasks: Any) -> None:
    """Airflow's ``chain``: link consecutive elements; two lists of equal length pair up."""
    for up, down in itertools.pairwise(tasks):
        up_is_list = isinstance(up, Sequence) and not isinstance(up, str)
        down_is_list = isinstance(down, Sequence) and not isinstance(down, str)
        if up_is_list and down_is_list:
            if len(up) != len(down):
                raise fail(
                    f"chain() got lists of different lengths ({len(up)} and {len(down)})",
                    hint="adjacent lists in chain() must have the same length",
                )
            for u, d in zip(up, down, strict=True):
                link(u, d)
        else:
            link(up, down)


def cross_downstream(from_tasks: Sequence[Any], to_tasks: Any) -> None:
    """Make every task of ``to_tasks`` run after every task of ``from_tasks``."""
    for task in from_tasks:
        link(task, to_tasks)
