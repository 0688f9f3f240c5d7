"""Store and RedisStore implement leoflow/store/api.py exactly (names and signatures)."""

from __future__ import annotations

import inspect

import pytest

from leoflow.store import RedisStore, Repository, Store
from leoflow.store.api import (
    TI_MANUAL_MARKS,
    TI_TRANSITIONS,
    RedisAPI,
    StoreAPI,
    TIState,
    ti_sources,
)


def _methods(proto: type) -> list[str]:
    return [n for n, v in vars(proto).items() if callable(v) and not n.startswith("_")]


def _params(fn: object) -> list[tuple[str, object, object]]:
    sig = inspect.signature(fn)  # type: ignore[arg-type]
    return [(p.name, p.kind, p.default) for p in sig.parameters.values()]


@pytest.mark.parametrize("name", _methods(StoreAPI))
def test_store_matches_contract(name: str) -> None:
    for impl in (Store, Repository):
        assert hasattr(impl, name), f"{impl.__name__} lacks {name}"
        assert _params(getattr(impl, name)) == _params(getattr(StoreAPI, name)), name
        assert inspect.iscoroutinefunction(getattr(StoreAPI, name)) == (
            inspect.iscoroutinefunction(getattr(impl, name))
        )


@pytest.mark.parametrize("name", _methods(RedisAPI))
def test_redis_store_matches_contract(name: str) -> None:
    assert _params(getattr(RedisStore, name)) == _params(getattr(RedisAPI, name)), name


def test_transition_table_is_closed_over_states() -> None:
    states = {None, *TIState}
    assert set(TI_TRANSITIONS) == states
    for targets in TI_TRANSITIONS.values():
        assert targets <= states
    # Every state can be cleared (running via restarting), and the worker's happy path exists.
    assert all(None in TI_TRANSITIONS[s] for s in TIState if s is not TIState.RUNNING)
    assert TIState.RESTARTING in TI_TRANSITIONS[TIState.RUNNING]
    assert TIState.RUNNING in ti_sources(TIState.SUCCESS)
    assert TIState.SUCCESS not in ti_sources(TIState.FAILED)
    assert {TIState.SUCCESS, TIState.FAILED, TIState.SKIPPED} == set(TI_MANUAL_MARKS)
