"""Conversion and validation of authoring values: durations, dates, JSON, task arguments."""

from __future__ import annotations

import inspect
import math
from datetime import date, datetime, timedelta, timezone
from typing import Any

from leoflow.sdk._errors import fail
from leoflow.sdk.xcom_arg import XComArg

ARG_HINT = "pass JSON values or another task's output"


def seconds(value: Any, name: str, *, allow_none: bool = True) -> float | None:
    """A timedelta or number of seconds as float seconds."""
    if value is None and allow_none:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise fail(f"{name} must be a datetime.timedelta or a number of seconds, not {value!r}")


def aware(value: Any, name: str) -> datetime | None:
    """A timezone-aware datetime (naive values are taken as UTC)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise fail(f"{name} {value!r} is not an ISO 8601 date") from None
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if not isinstance(value, datetime):
        raise fail(f"{name} must be a datetime, not {type(value).__name__}")
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)  # noqa: UP017 (3.10)


def tz_name(value: datetime | None) -> str:
    """The IANA key of a datetime's zone, else "UTC"."""
    tz = value.tzinfo if value is not None else None
    if tz is None:
        return "UTC"
    key = getattr(tz, "key", None) or getattr(tz, "name", None)
    if isinstance(key, str) and ("/" in key or key == "UTC"):
        return key
    return "UTC"


def is_json(value: Any) -> bool:
    """True when ``value`` is a JSON value (tuples count as arrays)."""
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_json(v) for k, v in value.items())
    return False


def to_json(value: Any) -> Any:
    """Tuples become lists; everything else is already JSON."""
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


def _contains_xcom(value: Any) -> bool:
    if isinstance(value, XComArg):
        return True
    if isinstance(value, (list, tuple, set)):
        return any(_contains_xcom(v) for v in value)
    if isinstance(value, dict):
        return any(_contains_xcom(v) for v in value.values())
    return False


class BoundArgs:
    """A task's arguments split into the spec's three maps, plus the tasks it reads."""

    def __init__(self) -> None:
        self.call_args: dict[str, Any] = {}
        self.xcom_inputs: dict[str, dict[str, str]] = {}
        self.fan_ins: dict[str, dict[str, Any]] = {}
        self.sources: list[XComArg] = []


def bind_arguments(
    func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], *, task_id: str, dag_id: str
) -> BoundArgs:
    """Bind a call to ``func``'s signature and classify each argument (errors at user line)."""
    where = f"task {task_id!r} of DAG {dag_id!r}"
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        sig = None
    if sig is None:
        if args:
            raise fail(f"{where}: positional arguments need a Python function with a signature")
        named = dict(kwargs)
    else:
        try:
            bound = sig.bind_partial(*args, **kwargs)
        except TypeError as exc:
            raise fail(f"{where}: arguments do not match the function: {exc}") from None
        named = {}
        for name, value in bound.arguments.items():
            kind = sig.parameters[name].kind
            if kind is inspect.Parameter.VAR_KEYWORD:
                named.update(value)
            elif kind is inspect.Parameter.VAR_POSITIONAL:
                if value:
                    raise fail(
                        f"{where}: values for *{name} are not supported",
                        hint="give the function named parameters (or one list parameter)",
                    )
            else:
                named[name] = value
    result = BoundArgs()
    for name, value in named.items():
        _classify(result, name, value, where)
    return result


def _classify(result: BoundArgs, name: str, value: Any, where: str) -> None:
    if isinstance(value, XComArg):
        result.xcom_inputs[name] = value.ref()
        result.sources.append(value)
        return
    shallow = isinstance(value, (list, tuple, dict)) and any(
        isinstance(v, XComArg) for v in (value.values() if isinstance(value, dict) else value)
    )
    if shallow:
        result.fan_ins[name] = _fan_in(result, name, value, where)
        return
    if _contains_xcom(value):
        raise fail(
            f"argument {name!r} of {where} nests another task's output more than one level "
            "deep (or in a set)",
            hint=f"{ARG_HINT}; a list, tuple or dict of outputs works one level deep",
        )
    if not is_json(value):
        raise fail(
            f"argument {name!r} of {where} is a {type(value).__name__}, which is neither JSON "
            "nor another task's output",
            hint=f"{ARG_HINT} (build other objects inside the task function)",
        )
    result.call_args[name] = to_json(value)


def _fan_in(result: BoundArgs, name: str, value: Any, where: str) -> dict[str, Any]:
    if isinstance(value, dict):
        shape = "dict"
        items = list(value.items())
    else:
        shape = "tuple" if isinstance(value, tuple) else "list"
        items = [(None, v) for v in value]
    slots = []
    for key, item in items:
        if key is not None and not isinstance(key, str):
            raise fail(f"argument {name!r} of {where}: dict keys must be strings, not {key!r}")
        if isinstance(item, XComArg):
            slots.append({"ref": item.ref(), "value": None, "key": key})
            result.sources.append(item)
        elif _contains_xcom(item):
            raise fail(
                f"argument {name!r} of {where} nests another task's output more than one "
                "level deep",
                hint=f"{ARG_HINT}; a list, tuple or dict of outputs works one level deep",
            )
        elif is_json(item):
            slots.append({"ref": None, "value": to_json(item), "key": key})
        else:
            raise fail(
                f"argument {name!r} of {where} holds a {type(item).__name__}, which is "
                "neither JSON nor another task's output",
                hint=ARG_HINT,
            )
    return {"shape": shape, "slots": slots}
