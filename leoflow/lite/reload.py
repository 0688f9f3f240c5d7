"""Registering workspace projects, and registering them again whenever they are saved.

``Registrar.register(project)`` compiles a snapshot of the project (``bundles``), makes sure the
DAG's venv is ready when it declares dependencies, then registers the spec as a new version. A
project that fails to load or compile becomes an import error (``/api/v2/importErrors``) and a
console line, while the last good version stays current and keeps running; the next good save
deletes the error. Saves arriving while a project is still being registered supersede it: only
the newest one is registered.

``Reloader`` watches the workspace and the command line's projects with watchfiles (inotify, no
polling) and hands every touched project to the registrar; new project folders are picked up,
deleted ones are marked stale.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from watchfiles import Change, DefaultFilter, awatch

from leoflow.errors import CompileError, LeoflowError
from leoflow.lite.bundles import Bundles, Compiled
from leoflow.lite.venvs import VenvPool
from leoflow.lite.workspace import is_project, project_of
from leoflow.spec import DagSpec
from leoflow.store.api import DEFAULT_TENANT, DagVersion

if TYPE_CHECKING:
    from leoflow.store.store import Store

log = logging.getLogger(__name__)

IMPORT_ERROR_BUNDLE = "lite"
WATCH_DEBOUNCE_MS = 400
WATCH_STEP_MS = 50


@dataclass
class ProjectState:
    """What Lite knows about one project folder."""

    root: Path
    dag_id: str | None = None
    version: DagVersion | None = None
    error: str | None = None
    generation: int = 0
    registered_at: float | None = None
    took: float | None = None


def error_filename(root: Path) -> str:
    """The file an import error of this project is recorded under (its DAG file)."""
    for name in ("dag.py", "leoflow.yaml"):
        if (root / name).is_file():
            return str(root / name)
    return str(root / "dag.py")


class Registrar:
    """Compiles and registers projects, and records their import errors."""

    def __init__(
        self,
        store: Store,
        bundles: Bundles,
        venvs: VenvPool,
        console: Console,
        *,
        tenant: str = DEFAULT_TENANT,
    ) -> None:
        self.store = store
        self.bundles = bundles
        self.venvs = venvs
        self.console = console
        self.tenant = tenant
        self.projects: dict[Path, ProjectState] = {}
        self._locks: dict[Path, asyncio.Lock] = {}
        self.listeners: list[Callable[[ProjectState], None]] = []

    async def register(self, root: Path, *, quiet: bool = False) -> ProjectState:
        """Compile ``root`` and register its spec (or record why it cannot be)."""
        root = Path(root).resolve()
        state = self.projects.setdefault(root, ProjectState(root))
        state.generation += 1
        generation = state.generation
        lock = self._locks.setdefault(root, asyncio.Lock())
        async with lock:
            if generation != state.generation:
                return state  # a newer save is queued behind us and will do the work
            began = time.monotonic()
            try:
                compiled = await self._compile(root)
                deps = compiled.spec.runtime.dependencies
                if deps:
                    # Switch only once the new venv is ready; until then the old version runs.
                    await self.venvs.ensure(
                        compiled.spec.dag_id, compiled.spec.runtime.python_version, deps
                    )
                if generation != state.generation:
                    return state
                await self._registered(state, compiled, time.monotonic() - began, quiet)
            except LeoflowError as exc:
                await self._failed(state, exc)
            except Exception as exc:  # a bug or the OS: still an import error, never a crash
                log.exception("registering %s failed", root)
                await self._failed(state, LeoflowError(f"{type(exc).__name__}: {exc}"))
        self._notify(state)
        return state

    async def _compile(self, root: Path) -> Compiled:
        try:
            return await asyncio.to_thread(self.bundles.compile, root)
        except CompileError:
            # A top-level import of a declared dependency: compile with the DAG's own venv.
            from leoflow.project import load_project

            project = await asyncio.to_thread(load_project, root)
            deps = list(project.config.dependencies)
            if not deps:
                raise
            name = project.config.dag_id or root.name
            self.console.print(
                f"[dim]{escape(name)}: compiling with its venv ({escape(', '.join(deps))})[/]",
                highlight=False,
                soft_wrap=True,
            )
            python = await self.venvs.ensure(name, project.config.python_version, deps)
            return await asyncio.to_thread(self.bundles.compile, root, python=python)

    async def _registered(
        self, state: ProjectState, compiled: Compiled, took: float, quiet: bool
    ) -> None:
        spec = compiled.spec
        version, created = await self.store.register_version(
            self.tenant, spec, created_by="leoflow-lite"
        )
        await self.store.delete_import_error(self.tenant, error_filename(state.root))
        if state.dag_id and state.dag_id != spec.dag_id:
            await self._stale(state.dag_id)
        fixed = state.error is not None
        state.dag_id, state.version, state.error = spec.dag_id, version, None
        state.registered_at, state.took = time.time(), took
        if not spec.runtime.dependencies:
            # Warm the venv now so the first run does not wait for it.
            asyncio.get_running_loop().create_task(self._warm(spec.dag_id, spec))
        if quiet and not fixed:
            return
        if created or fixed:
            what = "registered" if created else "back to"
            self.console.print(
                f"[green]{what}[/] [bold]{escape(spec.dag_id)}[/] v{version.version_number} "
                f"({version.label}) in {took:.2f}s"
                + (" [green](import error cleared)[/]" if fixed else ""),
                highlight=False,
                soft_wrap=True,
            )

    async def _warm(self, dag_id: str, spec: DagSpec) -> None:
        runtime = spec.runtime
        try:
            await self.venvs.ensure(dag_id, runtime.python_version, runtime.dependencies)
        except LeoflowError as exc:
            self.console.print(f"[red]venv {escape(dag_id)}:[/] {escape(str(exc))}")

    async def _failed(self, state: ProjectState, exc: LeoflowError) -> None:
        text = str(exc)
        state.error = text
        keeps = (
            f" (v{state.version.version_number} stays current)" if state.version is not None else ""
        )
        # Printed before it is recorded, so whoever sees it in the API can find it here too.
        self.console.print(
            f"[bold red]import error[/] in {escape(str(state.root))}{keeps}:\n{escape(text)}",
            highlight=False,
        )
        try:
            await self.store.upsert_import_error(
                self.tenant,
                error_filename(state.root),
                text,
                bundle_name=IMPORT_ERROR_BUNDLE,
            )
        except LeoflowError as store_exc:
            log.warning("could not record the import error of %s: %s", state.root, store_exc)

    async def remove(self, root: Path) -> None:
        """A project folder vanished: mark its DAG stale and forget its import error."""
        state = self.projects.pop(root, None)
        if state is None:
            return
        await self.store.delete_import_error(self.tenant, error_filename(root))
        if state.dag_id:
            await self._stale(state.dag_id)
            self.console.print(f"[yellow]removed[/] {escape(state.dag_id)} ({escape(str(root))})")

    async def _stale(self, dag_id: str) -> None:
        try:
            await self.store.set_dag_stale(self.tenant, dag_id, True)
        except LeoflowError as exc:
            log.warning("could not mark %s stale: %s", dag_id, exc)

    def _notify(self, state: ProjectState) -> None:
        for listener in list(self.listeners):
            listener(state)


class _ProjectFilter(DefaultFilter):
    """watchfiles' defaults (no VCS, caches, editor swap files) plus dag.json and hidden dirs."""

    def __call__(self, change: Change, path: str) -> bool:
        if not super().__call__(change, path):
            return False
        parts = Path(path).parts
        return not (parts[-1] == "dag.json" or any(p.startswith(".") for p in parts[1:-1]))


class Reloader:
    """Watches project folders and registers what changed."""

    def __init__(self, registrar: Registrar, workspace: Path, extra: Iterable[Path] = ()) -> None:
        self.registrar = registrar
        self.workspace = Path(workspace).resolve()
        self.extra = [Path(p).resolve() for p in extra]
        self._tasks: set[asyncio.Task[object]] = set()

    def watched(self) -> list[Path]:
        """The folders watched: the workspace and every project outside it."""
        roots = [self.workspace] if self.workspace.is_dir() else []
        for path in self.extra:
            if not any(path == r or r in path.parents for r in roots):
                roots.append(path)
        return roots

    async def run(self, stop: asyncio.Event) -> None:
        """Watch until ``stop`` is set."""
        paths = self.watched()
        if not paths:
            await stop.wait()
            return
        async for changes in awatch(
            *paths,
            watch_filter=_ProjectFilter(),
            debounce=WATCH_DEBOUNCE_MS,
            step=WATCH_STEP_MS,
            stop_event=stop,
        ):
            for root in self._touched({Path(p) for _change, p in changes}):
                task = asyncio.get_running_loop().create_task(self._apply(root))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _touched(self, paths: set[Path]) -> set[Path]:
        known = list(self.registrar.projects)
        roots: set[Path] = set()
        for path in paths:
            root = project_of(path, known)
            if root is None:
                root = self._new_project(path)
            if root is not None:
                roots.add(root)
        return roots

    def _new_project(self, path: Path) -> Path | None:
        # A file saved in a folder that has just become a project (dag.py or leoflow.yaml).
        for folder in [path if path.is_dir() else path.parent, *path.parents]:
            if folder == self.workspace.parent or self.workspace not in [folder, *folder.parents]:
                return None
            if folder != self.workspace and is_project(folder):
                return folder
        return None

    async def _apply(self, root: Path) -> None:
        if root.is_dir() and is_project(root):
            await self.registrar.register(root)
        else:
            await self.registrar.remove(root)

    async def drain(self) -> None:
        """Wait for registrations started by saves (tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
