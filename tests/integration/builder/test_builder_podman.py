"""The dockerd build and push tests, run again against podman's Docker-compatible service.

Issue 3 asks ``--build``/``--push`` to work against dockerd *or* podman. Rather than copy the
checks, this module imports the tests of ``test_builder_image.py`` so pytest collects them
here too, and overrides ``docker_host`` so that, in this module, it is a ``podman system
service`` of our own (see ``builder_engine.running_podman``) holding the same runtime image,
built FROM the same debootstrapped Debian.
"""

from __future__ import annotations

import pytest
from builder_engine import Engine
from test_builder_image import (  # noqa: F401 (collected again here, on podman)
    built,
    test_a_dag_py_only_change_rebuilds_only_the_code_layer,
    test_build_then_push_gives_a_labelled_non_root_image_and_a_registry_digest,
    test_dependencies_install_into_the_dag_venv_through_the_host_ca_bundle,
    test_push_needs_credentials_from_the_docker_config,
    test_push_to_an_unreachable_registry_names_it,
    test_the_projects_own_dockerfile_is_built_as_is,
)

pytestmark = pytest.mark.docker


@pytest.fixture
def docker_host(
    podman_engine: Engine, podman_runtime_base: str, monkeypatch: pytest.MonkeyPatch
) -> Engine:
    """Point the builder at podman (DOCKER_HOST) with the runtime image in place."""
    monkeypatch.setenv("DOCKER_HOST", podman_engine.host)
    return podman_engine


def test_the_engine_is_podman(docker_host: Engine) -> None:
    client = docker_host.client()
    try:
        names = [c["Name"] for c in client.version()["Components"]]
    finally:
        client.close()
    assert "Podman Engine" in names
