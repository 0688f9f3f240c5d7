"""Log file layout and parsing (pure)."""

from __future__ import annotations

from pathlib import Path

from leoflow.logs import log_path, parse_line, read_events


def test_ids_cannot_escape_the_logs_dir(tmp_path: Path) -> None:
    path = log_path(
        tmp_path, dag_id="..", run_id="../../etc/passwd", task_id="a/b", map_index=-1, try_number=1
    )
    assert path.resolve().is_relative_to(tmp_path.resolve())
    assert len(path.relative_to(tmp_path).parts) == 6
    assert path.name == "attempt=1.log"


def test_read_events_returns_complete_lines_and_the_next_offset(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_text(
        '{"timestamp": "2026-01-01T00:00:00Z", "level": "INFO", "event": "one", "logger": "task.stdout"}\n'
        "plain text\n"
        '{"event": "half'
    )
    events, offset = read_events(path)
    assert [e["event"] for e in events] == ["one", "plain text"]
    assert events[0]["level"] == "info"
    assert offset == path.read_bytes().index(b'{"event": "half')
    more, _ = read_events(path, offset=offset)
    assert more == []


def test_missing_file_reads_as_empty(tmp_path: Path) -> None:
    assert read_events(tmp_path / "nope.log", offset=5) == ([], 5)


def test_parse_line_keeps_extra_fields() -> None:
    event = parse_line('{"event": "x", "lineno": 3}')
    assert event is not None and event["lineno"] == 3 and event["logger"] == "task"
