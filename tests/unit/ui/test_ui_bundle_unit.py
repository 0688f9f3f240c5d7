"""ensure_ui_bundle / load_ui_bundle on synthetic wheels (no network: the wheel cache is used)."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest
from ui_fixtures import DIST_FILES, LOGIN_FILES, make_wheel

from leoflow.errors import LeoflowError
from leoflow.server.ui.bundle import (
    MARKER_NAME,
    PINNED_WHEEL_SHA256,
    UiBundleError,
    ensure_ui_bundle,
    load_ui_bundle,
    wheel_filename,
)

VERSION = "0.0.1"


def test_extracts_both_dists_byte_identical_with_marker(tmp_path: Path) -> None:
    sha = make_wheel(tmp_path / "wheels", VERSION)
    bundle = ensure_ui_bundle(
        tmp_path / "home", version=VERSION, sha256=sha, wheel_dir=tmp_path / "wheels"
    )

    assert bundle.root == tmp_path / "home" / "ui" / VERSION
    assert bundle.version == VERSION and bundle.wheel_sha256 == sha
    for rel, data in DIST_FILES.items():
        assert (bundle.dist_dir / rel).read_bytes() == data
    for rel, data in LOGIN_FILES.items():
        assert (bundle.login_dist_dir / rel).read_bytes() == data
    marker = json.loads((bundle.root / MARKER_NAME).read_text())
    assert marker["wheel_sha256"] == sha and marker["version"] == VERSION
    # only the two dists and the marker: nothing else from the wheel, no leftovers beside it
    assert sorted(p.name for p in bundle.root.iterdir()) == [MARKER_NAME, "dist", "login-dist"]
    assert sorted(p.name for p in bundle.root.parent.iterdir()) == [VERSION]


def test_reuses_an_existing_bundle_without_touching_the_wheel(tmp_path: Path) -> None:
    sha = make_wheel(tmp_path / "wheels", VERSION)
    first = ensure_ui_bundle(
        tmp_path / "home", version=VERSION, sha256=sha, wheel_dir=tmp_path / "wheels"
    )
    mtime = (first.dist_dir / "index.html").stat().st_mtime_ns
    for wheel in (tmp_path / "wheels").iterdir():
        wheel.unlink()  # a second call must not need it

    again = ensure_ui_bundle(
        tmp_path / "home", version=VERSION, sha256=sha, wheel_dir=tmp_path / "wheels"
    )

    assert again == first
    assert (again.dist_dir / "index.html").stat().st_mtime_ns == mtime
    assert load_ui_bundle(tmp_path / "home", version=VERSION) == first


def test_partial_bundle_without_marker_is_replaced(tmp_path: Path) -> None:
    sha = make_wheel(tmp_path / "wheels", VERSION)
    partial = tmp_path / "home" / "ui" / VERSION / "dist"
    partial.mkdir(parents=True)
    (partial / "index.html").write_text("half written")
    assert load_ui_bundle(tmp_path / "home", version=VERSION) is None

    bundle = ensure_ui_bundle(
        tmp_path / "home", version=VERSION, sha256=sha, wheel_dir=tmp_path / "wheels"
    )

    assert (bundle.dist_dir / "index.html").read_bytes() == DIST_FILES["index.html"]
    assert sorted(p.name for p in bundle.root.parent.iterdir()) == [VERSION]


def test_bundle_with_other_hash_is_not_loaded(tmp_path: Path) -> None:
    sha = make_wheel(tmp_path / "wheels", VERSION)
    bundle = ensure_ui_bundle(
        tmp_path / "home", version=VERSION, sha256=sha, wheel_dir=tmp_path / "wheels"
    )
    marker = json.loads((bundle.root / MARKER_NAME).read_text())
    marker["wheel_sha256"] = "f" * 64
    (bundle.root / MARKER_NAME).write_text(json.dumps(marker))

    again = ensure_ui_bundle(
        tmp_path / "home", version=VERSION, sha256=sha, wheel_dir=tmp_path / "wheels"
    )

    assert json.loads((again.root / MARKER_NAME).read_text())["wheel_sha256"] == sha


def test_unpinned_version_without_hash_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UiBundleError, match="no pinned sha256") as err:
        ensure_ui_bundle(tmp_path, version="9.9.9")
    assert isinstance(err.value, LeoflowError) and err.value.field == "version"
    assert not (tmp_path / "ui").exists()


def test_wheel_with_path_traversal_is_rejected_and_nothing_installed(tmp_path: Path) -> None:
    sha = make_wheel(tmp_path / "wheels", VERSION, {"airflow/ui/dist/../../../evil.txt": b"x"})

    with pytest.raises(UiBundleError, match="unsafe path"):
        ensure_ui_bundle(
            tmp_path / "home", version=VERSION, sha256=sha, wheel_dir=tmp_path / "wheels"
        )

    assert list((tmp_path / "home" / "ui").iterdir()) == []
    assert not (tmp_path / "evil.txt").exists()


def test_wheel_missing_the_login_dist_is_rejected(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    path = wheels / wheel_filename(VERSION)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("airflow/ui/dist/index.html", "x")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(UiBundleError, match="has no airflow/api_fastapi"):
        ensure_ui_bundle(tmp_path / "home", version=VERSION, sha256=sha, wheel_dir=wheels)
    assert list((tmp_path / "home" / "ui").iterdir()) == []


def test_pinned_hash_for_the_default_version() -> None:
    assert PINNED_WHEEL_SHA256["3.2.2"] == (
        "877be429d59193b5e9aab1ae69f44066134bf483c633e9f7c59a9220ebfcc013"
    )
