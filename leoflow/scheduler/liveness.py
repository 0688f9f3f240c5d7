"""Is a task try's worker process still there? (the scheduler's reaper, on this host only).

The process executor records ``hostname`` and ``pid`` when a try starts; every worker leads its
own process group (pgid == pid) and runs ``leoflow.runtime.runner``. After a control-plane
crash the new leader checks the running and queued tries recorded on this host: a pid that is
gone, a zombie, or now some other program means the try's worker vanished.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

RUNNER_MODULE = b"leoflow.runtime.runner"


def process_state(pid: int, proc_root: Path = Path("/proc")) -> str | None:
    """The one-letter state of ``pid`` from /proc (R, S, Z...), None when it does not exist."""
    try:
        stat = (proc_root / str(pid) / "stat").read_text()
    except (OSError, ValueError):
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[0] if fields else None


def is_live_runner(pid: int | None, proc_root: Path = Path("/proc")) -> bool:
    """True when ``pid`` is a live (non-zombie) ``leoflow.runtime.runner`` process."""
    if not pid or pid <= 0:
        return False
    state = process_state(pid, proc_root)
    if state is None or state in ("Z", "X"):
        return False
    try:
        cmdline = (proc_root / str(pid) / "cmdline").read_bytes()
    except OSError:
        return False
    return RUNNER_MODULE in cmdline


def kill_runner_group(pid: int) -> None:
    """SIGKILL the process group a runner leads (no-op when it is already gone)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
