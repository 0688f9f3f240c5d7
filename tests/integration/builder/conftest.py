"""Session fixtures for the builder: a real dockerd, real registries, a locally built base image."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from builder_engine import (
    Engine,
    Registry,
    import_base_image,
    running_dockerd,
    running_podman,
    running_registry,
)
from builder_project import quiet_console

from leoflow.builder.dockerfile import runtime_image
from leoflow.builder.runtime_image import build_runtime_image

DEBIAN_TAG = "leoflow-test/debian:bookworm-minbase"


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    """dockerd of our own (no iptables, no bridge), stopped and wiped at session end."""
    with running_dockerd() as eng:
        yield eng


def _install_runtime_base(engine: Engine) -> str:
    """Import the debootstrapped Debian into ``engine`` and build the 3.11 runtime image FROM it."""
    client = engine.client()
    try:
        import_base_image(client, DEBIAN_TAG)
    finally:
        client.close()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DOCKER_HOST", engine.host)
        build_runtime_image("3.11", console=quiet_console(), base_image=DEBIAN_TAG)
    return runtime_image("3.11")


@pytest.fixture(scope="session")
def runtime_base(engine: Engine) -> str:
    """The Leoflow runtime image for Python 3.11, built FROM a debootstrapped Debian."""
    return _install_runtime_base(engine)


@pytest.fixture(scope="session")
def podman_engine() -> Iterator[Engine]:
    """podman's Docker-compatible service of our own (rootful, runc, private storage), stopped
    and wiped at session end."""
    with running_podman() as eng:
        yield eng


@pytest.fixture(scope="session")
def podman_runtime_base(podman_engine: Engine) -> str:
    """The same runtime image as :func:`runtime_base`, built inside podman."""
    return _install_runtime_base(podman_engine)


@pytest.fixture
def docker_host(engine: Engine, runtime_base: str, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """Point the builder at the test engine (DOCKER_HOST) with the runtime image in place."""
    monkeypatch.setenv("DOCKER_HOST", engine.host)
    return engine


@pytest.fixture(scope="session")
def registry() -> Iterator[Registry]:
    """An open docker-registry on a free loopback port."""
    with running_registry() as reg:
        yield reg


@pytest.fixture(scope="session")
def auth_registry() -> Iterator[Registry]:
    """A docker-registry that demands basic-auth credentials (leoflow / leoflow-test)."""
    with running_registry(htpasswd=True) as reg:
        yield reg
