"""The Airflow 3 web UI bundle: fetched from PyPI at setup time, cached, never modified.

The stock UI (``airflow/ui/dist``) and the simple auth manager's login page
(``airflow/api_fastapi/auth/managers/simple/ui/dist``) ship pre-built inside the
``apache-airflow-core`` wheel. ``leoflow setup`` downloads that wheel with pip, checks it against
the sha256 pinned here, and unpacks just those two folders into ``$LEOFLOW_HOME/ui/<version>/``:

    <home>/ui/3.2.2/
        dist/                  airflow/ui/dist, byte for byte
        login-dist/            the simple auth manager's login SPA, byte for byte
        .leoflow-bundle.json   marker, written last: version and wheel sha256

Extraction happens in a sibling temporary folder that is renamed into place, so a crash leaves
either a complete bundle or none. Nothing here is committed to the repository.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from leoflow.errors import LeoflowError, Unavailable

log = logging.getLogger(__name__)

DEFAULT_UI_VERSION = "3.2.2"

#: sha256 of ``apache_airflow_core-<version>-py3-none-any.whl`` as published on PyPI.
PINNED_WHEEL_SHA256: dict[str, str] = {
    "3.2.2": "877be429d59193b5e9aab1ae69f44066134bf483c633e9f7c59a9220ebfcc013",
}

UI_DIST_PREFIX = "airflow/ui/dist/"
LOGIN_DIST_PREFIX = "airflow/api_fastapi/auth/managers/simple/ui/dist/"
MARKER_NAME = ".leoflow-bundle.json"
_STALE_AFTER_SECONDS = 600
_SETUP_HINT = "run `leoflow setup` on a machine that can reach PyPI (or set PIP_INDEX_URL)"


class UiBundleError(LeoflowError):
    """The UI bundle is missing, could not be downloaded, or does not match its pinned hash."""


@dataclass(frozen=True)
class UiBundle:
    """An extracted, verified UI bundle on disk."""

    version: str
    root: Path
    wheel_sha256: str

    @property
    def dist_dir(self) -> Path:
        """The main UI (``airflow/ui/dist``): index.html, assets/, i18n/."""
        return self.root / "dist"

    @property
    def login_dist_dir(self) -> Path:
        """The simple auth manager's login SPA."""
        return self.root / "login-dist"


def wheel_filename(version: str) -> str:
    """The wheel file name pip saves for ``apache-airflow-core==version``."""
    return f"apache_airflow_core-{version}-py3-none-any.whl"


def load_ui_bundle(home: Path, *, version: str = DEFAULT_UI_VERSION) -> UiBundle | None:
    """The bundle already extracted under ``<home>/ui/<version>``, or None if absent or partial."""
    expected = PINNED_WHEEL_SHA256.get(version)
    root = Path(home) / "ui" / version
    return _valid_bundle(root, version, expected)


def ensure_ui_bundle(
    home: Path,
    *,
    version: str = DEFAULT_UI_VERSION,
    sha256: str | None = None,
    wheel_dir: Path | None = None,
    pip_timeout: float = 30.0,
) -> UiBundle:
    """Return the verified UI bundle under ``<home>/ui/<version>``, downloading it if needed.

    ``sha256`` overrides the pinned hash (required for unpinned versions). ``wheel_dir``, when
    given, is a wheel cache: a wheel there with the right hash is used without the network, and a
    freshly downloaded one is kept there.
    """
    expected = sha256 or PINNED_WHEEL_SHA256.get(version)
    if expected is None:
        raise UiBundleError(
            f"no pinned sha256 for apache-airflow-core {version}",
            field="version",
            hint=f"use one of {sorted(PINNED_WHEEL_SHA256)} or pass the wheel's sha256",
        )
    ui_root = Path(home) / "ui"
    target = ui_root / version
    existing = _valid_bundle(target, version, expected)
    if existing is not None:
        return existing
    ui_root.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(ui_root, version)
    with tempfile.TemporaryDirectory(prefix=f".{version}.download-", dir=ui_root) as tmp:
        wheel = _obtain_wheel(version, expected, Path(tmp), wheel_dir, pip_timeout)
        staging = Path(tempfile.mkdtemp(prefix=f".{version}.extract-", dir=ui_root))
        try:
            _extract(wheel, staging)
            _write_marker(staging, version, expected)
            _install(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    bundle = _valid_bundle(target, version, expected)
    if bundle is None:  # pragma: no cover - only if another process broke it in between
        raise UiBundleError(
            f"UI bundle at {target} is incomplete", path=str(target), hint=_SETUP_HINT
        )
    return bundle


def _valid_bundle(root: Path, version: str, expected: str | None) -> UiBundle | None:
    try:
        marker = json.loads((root / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return None
    if marker.get("version") != version or not isinstance(marker.get("wheel_sha256"), str):
        return None
    if expected is not None and marker["wheel_sha256"] != expected:
        return None
    bundle = UiBundle(version=version, root=root, wheel_sha256=marker["wheel_sha256"])
    if not (bundle.dist_dir / "index.html").is_file():
        return None
    if not (bundle.login_dist_dir / "index.html").is_file():
        return None
    return bundle


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _obtain_wheel(
    version: str, expected: str, tmp: Path, wheel_dir: Path | None, pip_timeout: float
) -> Path:
    name = wheel_filename(version)
    if wheel_dir is not None:
        cached = Path(wheel_dir) / name
        if cached.is_file() and _sha256_file(cached) == expected:
            return cached
    _pip_download(version, tmp, pip_timeout)
    wheel = tmp / name
    if not wheel.is_file():
        raise UiBundleError(
            f"pip did not produce {name}",
            path=str(tmp),
            hint="check that pip can download wheels (no --no-binary in PIP_* settings)",
        )
    actual = _sha256_file(wheel)
    if actual != expected:
        raise UiBundleError(
            f"apache-airflow-core {version} wheel has sha256 {actual}, expected {expected}",
            path=name,
            hint="the download was corrupted or the index serves a different file; "
            "check PIP_INDEX_URL, then run `leoflow setup` again",
        )
    if wheel_dir is not None:
        Path(wheel_dir).mkdir(parents=True, exist_ok=True)
        kept = Path(wheel_dir) / name
        partial = kept.with_name(f".{name}.{os.getpid()}.tmp")
        shutil.copyfile(wheel, partial)
        os.replace(partial, kept)
    return wheel


def _pip_download(version: str, dest: Path, pip_timeout: float) -> None:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--no-input",
        "--retries",
        "1",
        "--timeout",
        str(pip_timeout),
        f"apache-airflow-core=={version}",
        "-d",
        str(dest),
    ]
    log.info("downloading the Airflow UI bundle: %s", " ".join(cmd))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=pip_timeout * 10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(
            f"could not download apache-airflow-core {version}: {exc}", hint=_SETUP_HINT
        ) from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise Unavailable(
            f"could not download apache-airflow-core {version} from the package index "
            f"(offline or unreachable?): {tail}",
            hint=_SETUP_HINT,
        )


def _extract(wheel: Path, staging: Path) -> None:
    layout = ((UI_DIST_PREFIX, staging / "dist"), (LOGIN_DIST_PREFIX, staging / "login-dist"))
    try:
        with zipfile.ZipFile(wheel) as zf:
            counts = dict.fromkeys((p for p, _ in layout), 0)
            for info in zf.infolist():
                for prefix, dest in layout:
                    if info.filename.startswith(prefix) and not info.is_dir():
                        _extract_member(zf, info, info.filename[len(prefix) :], dest)
                        counts[prefix] += 1
    except zipfile.BadZipFile as exc:
        raise UiBundleError(f"{wheel.name} is not a valid wheel: {exc}", path=str(wheel)) from exc
    for prefix, count in counts.items():
        if count == 0:
            raise UiBundleError(f"{wheel.name} has no {prefix}", path=str(wheel))


def _extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, rel: str, dest: Path) -> None:
    parts = PurePosixPath(rel).parts
    if not parts or any(p in ("", ".", "..") for p in parts) or rel.startswith("/"):
        raise UiBundleError(f"unsafe path in wheel: {info.filename}", path=info.filename)
    out = dest.joinpath(*parts)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zf.open(info) as src, out.open("wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)


def _write_marker(staging: Path, version: str, sha256: str) -> None:
    marker = {"version": version, "wheel": wheel_filename(version), "wheel_sha256": sha256}
    (staging / MARKER_NAME).write_text(json.dumps(marker, indent=2) + "\n")


def _install(staging: Path, target: Path) -> None:
    """Rename ``staging`` to ``target``, moving an incomplete ``target`` aside first."""
    if target.exists():
        aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        with contextlib.suppress(FileNotFoundError):
            os.replace(target, aside / "bundle")
        shutil.rmtree(aside, ignore_errors=True)
    try:
        os.replace(staging, target)
    except OSError:
        # Another process installed its copy first; ours is redundant if theirs is valid.
        if not (target / MARKER_NAME).is_file():
            raise


def _remove_stale_temporaries(ui_root: Path, version: str) -> None:
    """Drop folders left by a crashed extraction; young ones may belong to a running setup."""
    cutoff = time.time() - _STALE_AFTER_SECONDS
    for prefix in (f".{version}.download-", f".{version}.extract-", f".{version}.old-"):
        for stale in ui_root.glob(prefix + "*"):
            try:
                if stale.stat().st_mtime < cutoff:
                    shutil.rmtree(stale, ignore_errors=True)
            except FileNotFoundError:
                continue
