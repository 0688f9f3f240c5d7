"""The stdlib-only slice of the leoflow package that every DAG venv and DAG image carries.

A DAG's own interpreter must import ``leoflow.sdk`` (dag.py does) and ``leoflow.runtime`` (the
runner) without the CLI's dependencies (pydantic, typer, ...), which could clash with the DAG's
own pins. So a slim copy of exactly these parts is written next to the venv and put on its path
with a ``.pth`` file; ``leoflow/compiler/__init__.py`` is replaced by an empty stub so that
``leoflow.compiler.probe`` imports without the compiler's pydantic-based modules.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import leoflow

# Relative to the leoflow package folder. Folders are copied whole (only *.py and data files,
# never caches); missing parts are skipped because they are written by other work in progress.
RUNTIME_PARTS = ("__init__.py", "sdk", "runtime", "compat", "compiler/probe.py")
_STUBS = {"compiler/__init__.py": '"""Stub: only ``probe`` ships in the slim runtime copy."""\n'}
_SKIP_DIRS = {"__pycache__"}
_SKIP_SUFFIXES = (".pyc", ".pyo")


def package_dir() -> Path:
    """The folder of the running leoflow package."""
    return Path(leoflow.__file__).resolve().parent


def runtime_files(source: Path | None = None) -> list[tuple[str, Path]]:
    """``(path relative to the leoflow folder, absolute file)`` pairs of the slim runtime, sorted."""
    root = source or package_dir()
    found: list[tuple[str, Path]] = []
    for part in RUNTIME_PARTS:
        path = root / part
        if path.is_file():
            found.append((part, path))
        elif path.is_dir():
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
                for name in filenames:
                    if name.endswith(_SKIP_SUFFIXES):
                        continue
                    full = Path(dirpath) / name
                    found.append((full.relative_to(root).as_posix(), full))
    return sorted(found)


def runtime_digest(source: Path | None = None) -> str:
    """SHA-256 over the slim runtime's file names and contents (changes when any file does)."""
    digest = hashlib.sha256()
    for rel, full in runtime_files(source):
        digest.update(rel.encode() + b"\0" + full.read_bytes() + b"\0")
    for rel, text in sorted(_STUBS.items()):
        digest.update(rel.encode() + b"\0" + text.encode() + b"\0")
    return digest.hexdigest()


def copy_runtime(dest: Path, source: Path | None = None) -> Path:
    """Write the slim runtime as ``dest/leoflow/...``; ``dest`` then goes on a sys.path."""
    pkg = dest / "leoflow"
    for rel, full in runtime_files(source):
        target = pkg / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(full, target)
    for rel, text in _STUBS.items():
        target = pkg / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    # Subfolders copied without an __init__.py still import as namespace packages: fine.
    return dest
