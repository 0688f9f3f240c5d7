"""What ``leoflow lite`` shows: the start-up panel and one line per run state change."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from leoflow.errors import LeoflowError
from leoflow.lite.reload import ProjectState
from leoflow.store.api import TERMINAL_RUN_STATES, DagRun, DagRunState

if TYPE_CHECKING:
    from leoflow.store.store import EventListener, Store

log = logging.getLogger(__name__)

_STATE_STYLE = {
    DagRunState.QUEUED: "cyan",
    DagRunState.RUNNING: "yellow",
    DagRunState.SUCCESS: "green",
    DagRunState.FAILED: "red",
}
_POLL_SECONDS = 0.5


def startup_panel(
    *,
    url: str,
    username: str,
    password: str | None,
    projects: Iterable[ProjectState],
    executor: str,
    home: Path,
    workspace: Path,
    seconds: float,
    password_from_env: bool = False,
    ui_installed: bool = True,
) -> Panel:
    """The panel printed once Lite serves: where, as whom, what, and how it runs."""
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("UI and API", f"[link={url}]{url}[/link]")
    if not ui_installed:
        head.add_row("", "[yellow]the web UI is not installed yet: run `leoflow setup`[/]")
    if password:
        login = (
            f"{escape(username)} / [bold yellow]{escape(password)}[/]  "
            "[dim](shown once: only its hash is stored)[/]"
        )
    elif password_from_env:
        login = f"{escape(username)}  [dim](password from LEOFLOW_BOOTSTRAP_PASSWORD)[/]"
    else:
        login = (
            f"{escape(username)}  [dim](password set on the first start; forgot it? "
            "`leoflow lite reset-password`)[/]"
        )
    head.add_row("Login", login)
    head.add_row("Executor", f"{escape(executor)} (each task in a fresh process of its DAG's venv)")
    head.add_row("Workspace", escape(str(workspace)))
    head.add_row("Home", escape(str(home)))
    dags = Table(box=None, pad_edge=False, show_edge=False)
    dags.add_column("DAG", style="bold")
    dags.add_column("version")
    dags.add_column("project")
    for state in sorted(projects, key=lambda s: (s.dag_id or "~", str(s.root))):
        if state.error is not None:
            version = "[red]import error[/]"
        elif state.version is not None:
            version = f"v{state.version.version_number} ({state.version.label})"
        else:
            version = "[dim]pending[/]"
        dags.add_row(escape(state.dag_id or state.root.name), version, escape(str(state.root)))
    body = Group(head, "", dags) if dags.row_count else head
    return Panel(
        body,
        title=f"[bold]Leoflow Lite[/] ready in {seconds:.1f}s",
        subtitle="Ctrl-C stops everything",
        expand=False,
    )


def run_line(run: DagRun, previous: DagRunState | None) -> str:
    """One console line for a run's new state."""
    style = _STATE_STYLE.get(run.state, "white")
    arrow = f"{previous.value} -> " if previous is not None else ""
    took = ""
    if run.state in TERMINAL_RUN_STATES and run.duration is not None:
        took = f" in {run.duration:.1f}s"
    return (
        f"[dim]run[/] [bold]{escape(run.dag_id)}[/] {escape(run.run_id)} "
        f"(v{run.version_number}): {arrow}[{style}]{run.state.value}[/]{took}"
    )


class RunReporter:
    """Prints run state changes, woken by the store's NOTIFY channel (quiet when idle).

    Postgres notifies when a run is queued and when a task try ends; a run's own start and end
    are decided by the scheduler right after, so runs seen active are re-read every half second
    until they finish, and not at all once nothing runs.
    """

    def __init__(self, store: Store, console: Console) -> None:
        self.store = store
        self.console = console
        self._states: dict[int, DagRunState] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Report until ``stop`` is set."""
        listener = await self.store.listen()
        try:
            await self._seed()
            while not stop.is_set():
                payloads = await self._next(listener, stop)
                run_pks = {int(p.split(":", 1)[1]) for p in payloads if ":" in p}
                run_pks |= {pk for pk, s in self._states.items() if s not in TERMINAL_RUN_STATES}
                for pk in sorted(run_pks):
                    await self._check(pk)
        finally:
            with contextlib.suppress(Exception):
                await listener.close()

    async def _next(self, listener: EventListener, stop: asyncio.Event) -> list[str]:
        active = any(s not in TERMINAL_RUN_STATES for s in self._states.values())
        getter = asyncio.ensure_future(listener.get())
        stopper = asyncio.ensure_future(stop.wait())
        try:
            done, _ = await asyncio.wait(
                {getter, stopper},
                timeout=_POLL_SECONDS if active else None,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for fut in (getter, stopper):
                if not fut.done():
                    fut.cancel()
        if getter in done:
            return [getter.result(), *listener.drain()]
        return []

    async def _seed(self) -> None:
        for run in await self.store.list_active_runs():
            self._states[run.id] = run.state

    async def _check(self, run_pk: int) -> None:
        try:
            run = await self.store.get_run_by_id(run_pk)
        except LeoflowError:
            self._states.pop(run_pk, None)
            return
        previous = self._states.get(run_pk)
        if previous == run.state:
            return
        self._states[run_pk] = run.state
        self.console.print(run_line(run, previous), highlight=False, soft_wrap=True)
        if run.state in TERMINAL_RUN_STATES:
            self._states.pop(run_pk, None)
