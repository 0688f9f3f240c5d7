"""Per-DAG virtualenvs, built with uv, reused when unchanged and swapped in atomically.

Layout under ``<home>/venvs/<dag_id>/``::

    <key>/                  one complete venv per (python_version, dependencies, leoflow version)
      .leoflow-venv.json    written last: a folder without it is half-built and gets removed
      leoflow-runtime/<d>/  the slim stdlib-only leoflow copy (see runtime_files), on sys.path
                            through ``site-packages/_leoflow_runtime.pth``
    current -> <key>        swapped with one rename(2), so readers never see a half state
    .lock                   serialises builders of this DAG (readers never take it)

A venv is built in its own new folder beside the working one; only when uv succeeded does
``current`` move. The previous venv is kept (a task may still be running in it); older ones are
removed. One uv cache, ``<home>/uv-cache``, is shared by all DAGs. Python is never downloaded:
interpreters are looked up on the machine (pyenv, PATH, the usual prefixes).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from leoflow import __version__
from leoflow.builder.runtime_files import copy_runtime, runtime_digest
from leoflow.errors import BuildError

MARKER = ".leoflow-venv.json"
PTH_NAME = "_leoflow_runtime.pth"
CURRENT = "current"
_CA_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Alpine
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL
    "/etc/ssl/cert.pem",  # macOS, BSD
)


@dataclass(frozen=True)
class VenvInfo:
    """A ready per-DAG venv."""

    dag_id: str
    path: Path
    python: Path
    key: str
    python_version: str
    reused: bool


def venv_key(python_version: str, dependencies: list[str]) -> str:
    """Hash of what decides a venv's content: Python, sorted deps, the leoflow version."""
    deps = sorted({" ".join(d.split()) for d in dependencies})
    body = json.dumps({"python": python_version, "deps": deps, "leoflow": __version__})
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def _python_in(venv: Path) -> Path:
    return venv / "bin" / "python"


def venv_python(home: Path, dag_id: str) -> Path | None:
    """The interpreter of the DAG's current venv, or None when it has none yet."""
    python = _python_in(home / "venvs" / dag_id / CURRENT)
    return python if python.exists() else None


def ensure_venv(
    home: Path,
    dag_id: str,
    python_version: str,
    dependencies: list[str],
    *,
    console: Console | None = None,
) -> VenvInfo:
    """Return the DAG's venv for these inputs, building it (aside, then swapping) if needed."""
    if not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$", dag_id):
        raise BuildError(f"invalid dag_id {dag_id!r} for a venv folder", field="dag_id")
    dag_dir = Path(home) / "venvs" / dag_id
    key = venv_key(python_version, dependencies)
    info = _reuse(dag_dir, dag_id, key, python_version)
    if info is not None:
        return info
    dag_dir.mkdir(parents=True, exist_ok=True)
    with _locked(dag_dir / ".lock"):
        info = _reuse(dag_dir, dag_id, key, python_version)  # another builder may have won
        if info is not None:
            return info
        _remove_half_built(dag_dir)
        venv = dag_dir / key
        try:
            _build(Path(home), venv, python_version, dependencies, console)
            _install_runtime(venv, python_version)
            _write_marker(venv, key, python_version, dependencies)
        except BaseException:
            shutil.rmtree(venv, ignore_errors=True)
            raise
        _swap_current(dag_dir, key)
        _prune(dag_dir, keep={key, _previous_key(dag_dir, key)})
    return VenvInfo(dag_id, venv, _python_in(venv), key, python_version, reused=False)


# -- reuse -------------------------------------------------------------------------------------


def _reuse(dag_dir: Path, dag_id: str, key: str, python_version: str) -> VenvInfo | None:
    venv = dag_dir / key
    python = _python_in(venv)
    # exists() follows the interpreter symlink: a removed base Python means rebuild.
    if not (venv / MARKER).is_file() or not python.exists():
        return None
    if _runtime_stale(venv):
        with _locked(dag_dir / ".lock"):
            _install_runtime(venv, python_version)
    link = dag_dir / CURRENT
    if not link.is_symlink() or os.readlink(link) != key:
        # Inputs went back to an earlier, still complete venv: make it current again.
        with _locked(dag_dir / ".lock"):
            _swap_current(dag_dir, key)
    return VenvInfo(dag_id, venv, python, key, python_version, reused=True)


def _runtime_stale(venv: Path) -> bool:
    pth = _site_packages(venv) / PTH_NAME
    try:
        current = Path(pth.read_text(encoding="utf-8").strip()).name
    except OSError:
        return True
    return current != runtime_digest()[:16]


# -- building ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_half_built(dag_dir: Path) -> None:
    for child in dag_dir.iterdir():
        if child.is_dir() and not child.is_symlink() and not (child / MARKER).exists():
            shutil.rmtree(child, ignore_errors=True)


def uv_env(home: Path) -> dict[str, str]:
    """The environment uv runs in: shared cache, no Python downloads, the host's CA bundle."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["UV_CACHE_DIR"] = str(home / "uv-cache")
    env["UV_PYTHON_DOWNLOADS"] = "never"
    env.setdefault("UV_NO_PROGRESS", "1")
    # uv trusts its bundled roots only; a proxy that re-signs TLS needs the system's bundle.
    if not env.get("SSL_CERT_FILE"):
        bundle = next((b for b in _CA_BUNDLES if Path(b).is_file()), None)
        if bundle:
            env["SSL_CERT_FILE"] = bundle
        else:
            env.setdefault("UV_SYSTEM_CERTS", "1")
    return env


def _uv(args: list[str], home: Path, what: str) -> None:
    from uv import find_uv_bin

    proc = subprocess.run(
        [find_uv_bin(), *args], env=uv_env(home), capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        reason = "\n".join(ln for ln in lines if not ln.startswith("Using Python"))
        raise BuildError(
            f"{what} failed:\n{reason}",
            hint="fix `dependencies:` in leoflow.yaml (uv's reason is above)",
            field="dependencies",
        )


def _build(
    home: Path, venv: Path, python_version: str, deps: list[str], console: Console | None
) -> None:
    interpreter = find_interpreter(python_version)
    started = time.monotonic()
    if console:
        console.print(f"[dim]venv[/] {venv.parent.name}: Python {python_version} ({interpreter})")
    _uv(
        ["venv", "--quiet", "--python", str(interpreter), "--no-python-downloads", str(venv)],
        home,
        f"creating the venv with {interpreter}",
    )
    if deps:
        requirements = venv / "leoflow-requirements.txt"
        requirements.write_text("\n".join(deps) + "\n", encoding="utf-8")
        _uv(
            [
                "pip",
                "install",
                "--python",
                str(_python_in(venv)),
                "--no-python-downloads",
                "-r",
                str(requirements),
            ],
            home,
            f"installing {len(deps)} dependencies ({', '.join(deps)})",
        )
    if console:
        console.print(f"[dim]venv[/] built in {time.monotonic() - started:.1f}s")


def _site_packages(venv: Path) -> Path:
    found = sorted((venv / "lib").glob("python3*/site-packages"))
    if not found:
        raise BuildError(f"no site-packages in {venv}", hint="delete the folder and retry")
    return found[0]


def _install_runtime(venv: Path, python_version: str) -> None:
    """Copy the slim runtime into ``leoflow-runtime/<digest>`` and point the .pth at it."""
    digest = runtime_digest()[:16]
    base = venv / "leoflow-runtime"
    target = base / digest
    if not target.exists():
        partial = base / f".{digest}.partial-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        copy_runtime(partial)
        partial.rename(target)
    pth = _site_packages(venv) / PTH_NAME
    tmp = pth.with_suffix(".tmp")
    tmp.write_text(f"{target}\n", encoding="utf-8")
    os.replace(tmp, pth)
    for old in base.iterdir():
        if old.name != digest:
            shutil.rmtree(old, ignore_errors=True)


def _write_marker(venv: Path, key: str, python_version: str, deps: list[str]) -> None:
    body = {
        "key": key,
        "python_version": python_version,
        "dependencies": deps,
        "leoflow": __version__,
        "created": time.time(),
    }
    tmp = venv / (MARKER + ".tmp")
    tmp.write_text(json.dumps(body, indent=2), encoding="utf-8")
    os.replace(tmp, venv / MARKER)


def _previous_key(dag_dir: Path, key: str) -> str:
    prev = dag_dir / ".previous"
    return prev.read_text().strip() if prev.exists() else key


def _swap_current(dag_dir: Path, key: str) -> None:
    link = dag_dir / CURRENT
    if link.is_symlink() and os.readlink(link) != key:
        (dag_dir / ".previous").write_text(os.readlink(link))
    tmp = dag_dir / f".{CURRENT}.tmp-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(key)  # relative: the home folder may move
    os.replace(tmp, link)


def _prune(dag_dir: Path, keep: set[str]) -> None:
    for child in dag_dir.iterdir():
        if child.is_dir() and not child.is_symlink() and child.name not in keep:
            shutil.rmtree(child, ignore_errors=True)


# -- interpreters ------------------------------------------------------------------------------


def _candidate_pythons() -> Iterator[Path]:
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    yield from sorted(pyenv_root.glob("versions/*/bin/python3.*"), reverse=True)
    yield from sorted(Path.home().glob(".local/share/uv/python/*/bin/python3.*"), reverse=True)
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if entry and "shims" not in Path(entry).parts:  # pyenv shims answer for one version only
            yield from sorted(Path(entry).glob("python3.*"))
    for prefix in ("/usr/local/bin", "/usr/bin", "/opt/homebrew/bin"):
        yield from sorted(Path(prefix).glob("python3.*"))
    yield from sorted(
        Path("/Library/Frameworks/Python.framework/Versions").glob("3.*/bin/python3.*")
    )


_PY_NAME = re.compile(r"^python(3\.\d+)$")


def find_interpreters() -> dict[str, Path]:
    """Python interpreters on this machine by ``major.minor`` (first found wins)."""
    found: dict[str, Path] = {}
    for path in _candidate_pythons():
        match = _PY_NAME.match(path.name)
        if match and match.group(1) not in found and os.access(path, os.X_OK) and path.is_file():
            found[match.group(1)] = path
    return found


def find_interpreter(python_version: str) -> Path:
    """An interpreter for ``python_version`` found on the machine; BuildError if there is none."""
    found = find_interpreters()
    if python_version in found:
        return found[python_version]
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == python_version:
        return Path(sys.executable)
    by_version = sorted(found.items(), key=lambda item: tuple(int(n) for n in item[0].split(".")))
    listed = ", ".join(f"{v} ({p})" for v, p in by_version) or "none"
    raise BuildError(
        f"no Python {python_version} interpreter on this machine (Leoflow never downloads one); "
        f"found: {listed}",
        field="python_version",
        hint=f"install Python {python_version} (e.g. `pyenv install {python_version}` or your "
        "package manager), or set python_version in leoflow.yaml to one listed",
    )
