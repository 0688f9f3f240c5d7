"""Per-DAG venvs for Lite: provisioned off the event loop, once per inputs, with progress.

``leoflow.builder.venv.ensure_venv`` does the work (blocking, uv); this module runs it in a
thread, lets concurrent askers for the same (dag_id, inputs) share one build, remembers ready
interpreters, and shows a rich progress line while a build runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from leoflow.builder.venv import ensure_venv, venv_key

log = logging.getLogger(__name__)


class VenvPool:
    """Ready interpreters by (dag_id, venv key), built on demand in worker threads."""

    def __init__(self, home: Path, console: Console | None = None) -> None:
        self.home = Path(home)
        self.console = console or Console(stderr=True)
        self._ready: dict[tuple[str, str], str] = {}
        self._building: dict[tuple[str, str], asyncio.Future[str]] = {}
        self._progress: Progress | None = None
        self._shown = 0

    def ready(self, dag_id: str, python_version: str, dependencies: Sequence[str]) -> str | None:
        """The interpreter when this venv is already known to be ready, else None."""
        return self._ready.get((dag_id, venv_key(python_version, list(dependencies))))

    async def ensure(self, dag_id: str, python_version: str, dependencies: Sequence[str]) -> str:
        """The venv interpreter for these inputs, building the venv first when needed."""
        deps = list(dependencies)
        key = (dag_id, venv_key(python_version, deps))
        if key in self._ready:
            return self._ready[key]
        pending = self._building.get(key)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            self._building[key] = pending
            asyncio.get_running_loop().create_task(self._build(key, python_version, deps, pending))
        return await asyncio.shield(pending)

    async def _build(
        self,
        key: tuple[str, str],
        python_version: str,
        deps: list[str],
        done: asyncio.Future[str],
    ) -> None:
        dag_id = key[0]
        task = self._start_progress(dag_id, deps)
        began = time.monotonic()
        try:
            info = await asyncio.to_thread(ensure_venv, self.home, dag_id, python_version, deps)
        except BaseException as exc:  # handed to every waiter
            if not done.done():
                done.set_exception(exc)
            self._stop_progress(task, f"[red]venv {dag_id} failed[/]")
        else:
            python = str(info.python)
            self._ready[key] = python
            if not done.done():
                done.set_result(python)
            if info.reused:
                self._stop_progress(task, None)
            else:
                took = time.monotonic() - began
                self._stop_progress(task, f"[green]venv[/] {dag_id} ready in {took:.1f}s")
        finally:
            self._building.pop(key, None)
            if done.done() and not done.cancelled() and done.exception() is not None:
                done.exception()  # mark retrieved: a waiter may have gone away

    def _start_progress(self, dag_id: str, deps: list[str]) -> TaskID | None:
        if not self.console.is_terminal:
            return None
        if self._progress is None:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.start()
        self._shown += 1
        what = ", ".join(deps) if deps else "no dependencies"
        return self._progress.add_task(f"venv {dag_id}: {what}", total=None)

    def _stop_progress(self, task: TaskID | None, message: str | None) -> None:
        if self._progress is not None and task is not None:
            self._progress.remove_task(task)
            self._shown -= 1
            if self._shown == 0:
                self._progress.stop()
                self._progress = None
        if message:
            self.console.print(message, highlight=False, soft_wrap=True)

    def close(self) -> None:
        """Stop the progress display (builds in threads finish on their own)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
