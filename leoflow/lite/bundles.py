"""Immutable code bundles: the exact project files behind each registered DAG version.

Compiling a project snapshots its files first and compiles the snapshot, so the registered spec
and the code a task later imports can never disagree, however fast the author keeps editing::

    $LEOFLOW_HOME/bundles/
      .staging/<random>/           a snapshot being compiled (removed or renamed when done)
      <dag_id>/<content_hash>/     one version's files, read-only, ``.leoflow-bundle`` last

A spec registered from elsewhere (``leoflow push``) has no snapshot: its bundle is made from
the spec itself, ``spec.source`` written as ``spec.source_file``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from leoflow.errors import LeoflowError
from leoflow.spec import DagSpec
from leoflow.store.api import DEFAULT_TENANT

MARKER = ".leoflow-bundle"
_SKIP_DIRS = {"__pycache__", ".git", ".venv", "venv", "node_modules", ".mypy_cache", ".ruff_cache"}
_SKIP_FILES = {"dag.json"}
_MAX_FILE_BYTES = 20 * 1024 * 1024
_MAX_BUNDLE_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True)
class Compiled:
    """A project compiled from its snapshot."""

    spec: DagSpec
    bundle: Path
    project: Path


class Bundles:
    """The bundle folders under ``root`` (``$LEOFLOW_HOME/bundles``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_of(self, spec: DagSpec, tenant: str = DEFAULT_TENANT) -> Path:
        """Where the bundle of this spec lives (made or not)."""
        base = self.root if tenant == DEFAULT_TENANT else self.root / f"@{tenant}"
        return base / spec.dag_id / spec.content_hash

    def compile(self, project: Path, *, python: str | None = None) -> Compiled:
        """Snapshot ``project``, compile the snapshot, keep it as the version's bundle.

        Errors are LeoflowErrors naming the user's files (never the snapshot's).
        """
        from leoflow.compiler import compile_project

        project = Path(project).resolve()
        staging = self.root / ".staging" / uuid.uuid4().hex
        try:
            snapshot(project, staging)
            try:
                result = compile_project(staging, python=python)
            except LeoflowError as exc:
                raise _relocated(exc, staging.resolve(), project) from None
            spec = result.spec
            target = self.path_of(spec)
            _install(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return Compiled(spec=spec, bundle=target, project=project)

    def ensure_for_spec(self, spec: DagSpec, tenant: str = DEFAULT_TENANT) -> Path:
        """The bundle of a spec, made from ``spec.source`` when no snapshot exists (a push)."""
        target = self.path_of(spec, tenant)
        if (target / MARKER).is_file():
            return target
        staging = self.root / ".staging" / uuid.uuid4().hex
        try:
            dag_file = staging / spec.source_file
            dag_file.parent.mkdir(parents=True, exist_ok=True)
            dag_file.write_text(spec.source, encoding="utf-8")
            _install(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def prune_staging(self) -> None:
        """Remove snapshots left behind by a crash."""
        shutil.rmtree(self.root / ".staging", ignore_errors=True)


def snapshot(project: Path, dest: Path) -> None:
    """Copy the project's files (no caches, venvs, VCS data or dag.json) into ``dest``."""
    total = 0
    for dirpath, dirnames, filenames in os.walk(project):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        here = Path(dirpath)
        out = dest / here.relative_to(project)
        out.mkdir(parents=True, exist_ok=True)
        for name in filenames:
            if name in _SKIP_FILES or name.endswith((".pyc", ".pyo")):
                continue
            source = here / name
            if not source.is_file():
                continue  # sockets, broken links
            size = source.stat().st_size
            total += size
            if size > _MAX_FILE_BYTES or total > _MAX_BUNDLE_BYTES:
                raise LeoflowError(
                    "the project folder is too large to snapshot for a DAG version",
                    path=str(source),
                    hint="keep data files outside the project folder (or under a hidden "
                    "folder); a project should hold code and small resources only",
                )
            shutil.copy2(source, out / name)


_INSTALL_LOCK = threading.Lock()
"""Serializes installs: concurrent dispatches of one version must not undo each other's bundle."""


def _install(staging: Path, target: Path) -> None:
    """Seal ``staging`` and rename it to ``target``; an existing complete bundle wins."""
    with _INSTALL_LOCK:
        _install_locked(staging, target)


def _install_locked(staging: Path, target: Path) -> None:
    if (target / MARKER).is_file():
        return
    (staging / MARKER).write_text(json.dumps({"path": target.name}), encoding="utf-8")
    _read_only(staging)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():  # a half-made bundle from a crash
        _writable(target)
        shutil.rmtree(target, ignore_errors=True)
    try:
        staging.rename(target)
    except OSError:
        if not (target / MARKER).is_file():  # not a lost race: a real failure
            raise


def _read_only(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            mode = path.stat().st_mode
            os.chmod(path, mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _writable(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                os.chmod(Path(dirpath) / name, 0o644)


def _relocated(exc: LeoflowError, staging: Path, project: Path) -> LeoflowError:
    """The same error with the snapshot's paths replaced by the project's."""
    forms = [(str(staging), str(project))]
    with contextlib.suppress(ValueError):
        forms.append((str(staging.relative_to(Path.cwd())), str(project)))

    def fix(text: str | None) -> str | None:
        if text is None:
            return None
        for old, new in forms:
            text = text.replace(old, new)
        return text

    exc.message = fix(exc.message) or ""
    exc.args = (exc.message, *exc.args[1:])
    exc.path = fix(exc.path)
    exc.hint = fix(exc.hint)
    return exc
