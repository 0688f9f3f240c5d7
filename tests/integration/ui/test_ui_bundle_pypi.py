"""ensure_ui_bundle against the real apache-airflow-core 3.2.2 wheel from PyPI."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from ui_live import WHEEL_CACHE

from leoflow.errors import Unavailable
from leoflow.server.ui.bundle import (
    PINNED_WHEEL_SHA256,
    UiBundle,
    UiBundleError,
    ensure_ui_bundle,
    load_ui_bundle,
    wheel_filename,
)

PINNED_WHEEL = WHEEL_CACHE / wheel_filename("3.2.2")


def _tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_pinned_wheel_is_verified_and_both_dists_extracted(real_bundle: UiBundle) -> None:
    assert hashlib.sha256(PINNED_WHEEL.read_bytes()).hexdigest() == PINNED_WHEEL_SHA256["3.2.2"]
    assert real_bundle.version == "3.2.2"
    assert real_bundle.wheel_sha256 == PINNED_WHEEL_SHA256["3.2.2"]
    ui_files = _tree(real_bundle.dist_dir)
    login_files = _tree(real_bundle.login_dist_dir)
    assert len(ui_files) == 234 and len(login_files) == 5
    assert "assets/index-C6RXW4nO.js" in ui_files
    assert "assets/sqlparser_rs_wasm_bg-CLYUWfXF.wasm" in ui_files
    assert "i18n/locales/en/common.json" in ui_files
    assert "assets/index-D1-zjZbD.js" in login_files
    index = (real_bundle.dist_dir / "index.html").read_text()
    assert '<base href="{{ backend_server_base_url }}" />' in index  # never modified


def test_warm_call_reuses_bundle_without_network(
    real_bundle: UiBundle, offline_pip: Path, tmp_path: Path
) -> None:
    home = real_bundle.root.parent.parent
    before = _tree(real_bundle.root)

    again = ensure_ui_bundle(home, wheel_dir=tmp_path / "no-wheels-here")

    assert again == real_bundle
    assert _tree(again.root) == before
    assert load_ui_bundle(home) == real_bundle


def test_wheel_cache_avoids_the_network(
    offline_pip: Path, tmp_path: Path, real_bundle: UiBundle
) -> None:
    bundle = ensure_ui_bundle(tmp_path / "home", wheel_dir=WHEEL_CACHE)
    assert _tree(bundle.dist_dir) == _tree(real_bundle.dist_dir)


def test_offline_without_cache_names_leoflow_setup(offline_pip: Path, tmp_path: Path) -> None:
    with pytest.raises(Unavailable) as err:
        ensure_ui_bundle(tmp_path / "home")

    assert "offline or unreachable" in str(err.value)
    assert "leoflow setup" in (err.value.hint or "")
    assert list((tmp_path / "home" / "ui").iterdir()) == []


def test_hash_mismatch_is_refused_and_nothing_extracted(offline_pip: Path, tmp_path: Path) -> None:
    shutil.copy(PINNED_WHEEL, offline_pip)  # pip will "download" the real wheel from here

    with pytest.raises(UiBundleError, match="expected 0000") as err:
        ensure_ui_bundle(tmp_path / "home", sha256="0" * 64)

    assert PINNED_WHEEL_SHA256["3.2.2"] in str(err.value)  # the actual hash is shown
    assert "leoflow setup" in (err.value.hint or "")
    assert list((tmp_path / "home" / "ui").iterdir()) == []


def test_corrupted_cached_wheel_is_ignored_and_replaced(offline_pip: Path, tmp_path: Path) -> None:
    shutil.copy(PINNED_WHEEL, offline_pip)
    cache = tmp_path / "wheel-cache"
    cache.mkdir()
    corrupted = cache / PINNED_WHEEL.name
    corrupted.write_bytes(PINNED_WHEEL.read_bytes()[:100_000])

    bundle = ensure_ui_bundle(tmp_path / "home", wheel_dir=cache)

    assert bundle.wheel_sha256 == PINNED_WHEEL_SHA256["3.2.2"]
    assert corrupted.read_bytes() == PINNED_WHEEL.read_bytes()
