"""Task log files: where they live and how they are read back as Airflow's structured events.

Layout (``log_path`` is the one definition; writers and readers both call it)::

    <logs_dir>/tenant=<t>/dag_id=<d>/run_id=<r>/task_id=<t>/map_index=<m>/attempt=<n>.log

Every path component is percent-encoded, so an id can never escape the directory (``/`` and
``..`` in a run_id become plain characters of one file name). A file holds one JSON object per
line: ``{"timestamp": ISO-8601, "level": "info", "event": "message", "logger": "task.stdout"}``.
Lines that are not JSON are served as plain ``event`` text so a half-written last line or a
stray print never breaks the log view.

It is a contract shared by every writer (executors, the agent service, the scheduler) and the
API that reads logs back, so it lives at the top of the package and depends on nothing but the
standard library.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote


def _part(value: object) -> str:
    text = quote(str(value), safe="")
    # "." and ".." survive quote(); prefixing keys makes them harmless, but keep them visible.
    return text.replace(".", "%2E") if text in (".", "..") else text


def log_path(
    logs_dir: Path,
    *,
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int,
    try_number: int,
    tenant: str = "default",
) -> Path:
    """The JSON-lines log file of one task try."""
    return (
        logs_dir
        / f"tenant={_part(tenant)}"
        / f"dag_id={_part(dag_id)}"
        / f"run_id={_part(run_id)}"
        / f"task_id={_part(task_id)}"
        / f"map_index={int(map_index)}"
        / f"attempt={int(try_number)}.log"
    )


def source_label(*, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> str:
    """The relative source name shown in the log view's fold marker."""
    return (
        f"dag_id={dag_id}/run_id={run_id}/task_id={task_id}/"
        f"map_index={map_index}/attempt={try_number}.log"
    )


def parse_line(line: str) -> dict[str, Any] | None:
    """One stored line as an event dict (None for blank lines)."""
    line = line.rstrip("\n")
    if not line.strip():
        return None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return {"timestamp": None, "event": line, "level": "info", "logger": "task"}
    if not isinstance(obj, dict):
        return {"timestamp": None, "event": line, "level": "info", "logger": "task"}
    return {
        "timestamp": obj.get("timestamp"),
        "event": str(obj.get("event", "")),
        "level": str(obj.get("level", "info")).lower(),
        "logger": obj.get("logger") or "task",
        **{k: v for k, v in obj.items() if k not in ("timestamp", "event", "level", "logger")},
    }


def read_events(path: Path, *, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Events stored from byte ``offset`` on, and the offset after the last complete line."""
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    events = [
        event
        for raw in data[:end].decode("utf-8", "replace").splitlines()
        if (event := parse_line(raw)) is not None
    ]
    return events, offset + end


def header_events(source: str) -> list[dict[str, Any]]:
    """The fold marker Airflow puts before a log's events."""
    return [
        {"timestamp": None, "event": "::group::Log message source details", "sources": [source]},
        {"timestamp": None, "event": "::endgroup::"},
    ]


def no_logs_event() -> dict[str, Any]:
    """What the log view shows for a try without a stored file."""
    return {
        "timestamp": None,
        "event": "No logs available for this attempt.",
        "level": "info",
        "logger": "leoflow",
    }
