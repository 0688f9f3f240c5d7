"""Build and push DAG images against a real dockerd and a real registry."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest
from builder_engine import Engine, Registry, free_port
from builder_project import make_project, make_spec, quiet_console

from leoflow.builder.dockerfile import write_dockerfile
from leoflow.builder.image import build_image, build_image_result, image_reference, push_image
from leoflow.errors import BuildError

pytestmark = pytest.mark.docker

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
    ]
)


def _run(engine: Engine, image: str, script: str) -> str:
    client = engine.client()
    try:
        out = client.containers.run(
            image, entrypoint=["sh", "-c", script], network_mode="none", remove=True
        )
    finally:
        client.close()
    return out.decode()


def test_build_then_push_gives_a_labelled_non_root_image_and_a_registry_digest(
    docker_host: Engine, registry: Registry, tmp_path: Path
) -> None:
    project = make_project(tmp_path / "demo", f"{registry.address}/leoflow/build_demo")
    spec = make_spec(project)
    image = image_reference(project, spec, None)
    assert image == f"{registry.address}/leoflow/build_demo:{spec.content_hash[:12]}"

    image_id = build_image(
        project,
        spec,
        image=image,
        dockerfile=write_dockerfile(project, spec),
        console=quiet_console(),
    )

    client = docker_host.client()
    try:
        attrs = client.images.get(image).attrs
    finally:
        client.close()
    assert attrs["Id"] == image_id
    labels = attrs["Config"]["Labels"]
    assert labels["leoflow.dag_id"] == "build_demo"
    assert labels["leoflow.version"] == spec.content_hash
    assert attrs["Config"]["User"] == "1000:1000"
    assert attrs["Config"]["Entrypoint"] == ["leoflow", "agent"]
    out = _run(
        docker_host,
        image,
        "id -u; test -x /usr/local/bin/leoflow && echo entrypoint-ok; ls -A /opt/leoflow/dag; cd /opt/leoflow/dag && $LEOFLOW_DAG_PYTHON -c "
        "'import helpers, pkg, leoflow.runtime; print(helpers.greet(), pkg.VALUE)'",
    )
    lines = out.split()
    assert lines[:2] == ["1000", "entrypoint-ok"]
    assert {"dag.py", "helpers.py", "pkg", "leoflow.yaml"} <= set(lines)
    assert "__pycache__" not in lines and "Dockerfile.leoflow" not in lines
    assert "hi from helpers 42" in out

    pinned = push_image(image, console=quiet_console())
    name, _, digest = pinned.partition("@")
    assert name == f"{registry.address}/leoflow/build_demo"
    resp = httpx.get(
        f"http://{registry.address}/v2/leoflow/build_demo/manifests/{spec.content_hash[:12]}",
        headers={"Accept": MANIFEST_TYPES},
    )
    assert resp.status_code == 200
    assert resp.headers["Docker-Content-Digest"] == digest


def test_a_dag_py_only_change_rebuilds_only_the_code_layer(
    docker_host: Engine, tmp_path: Path
) -> None:
    project = make_project(tmp_path / "demo", "local/leoflow/layers")
    spec = make_spec(project)
    first = build_image_result(
        project,
        spec,
        image="local/layers:1",
        dockerfile=write_dockerfile(project, spec),
        console=quiet_console(),
    )
    project.dag_path.write_text(project.dag_path.read_text() + "\n# edited\n")
    spec2 = make_spec(project)
    second = build_image_result(
        project,
        spec2,
        image="local/layers:2",
        dockerfile=write_dockerfile(project, spec2),
        console=quiet_console(),
    )

    client = docker_host.client()
    try:
        layers1 = client.images.get("local/layers:1").attrs["RootFS"]["Layers"]
        layers2 = client.images.get("local/layers:2").attrs["RootFS"]["Layers"]
    finally:
        client.close()
    assert len(layers1) == len(layers2)
    assert layers1[:-1] == layers2[:-1]  # base, runtime and dependency layers are shared
    assert layers1[-1] != layers2[-1]  # the project files layer is new
    by_instruction = {s.instruction: s.cached for s in second.steps}
    assert by_instruction["COPY .leoflow/ /opt/leoflow/build/"] is True
    assert by_instruction["COPY . /opt/leoflow/dag/"] is False
    assert first.image_id != second.image_id


def test_the_projects_own_dockerfile_is_built_as_is(docker_host: Engine, tmp_path: Path) -> None:
    project = make_project(
        tmp_path / "own", "local/own", extra_yaml="dockerfile: build/Dockerfile\n"
    )
    (project.root / "build").mkdir()
    (project.root / "build" / "Dockerfile").write_text(
        "FROM ghcr.io/leoflow/runtime:0.1.0-py3.11\nCOPY helpers.py /srv/\nLABEL own=yes\n"
    )
    spec = make_spec(project)
    dockerfile = write_dockerfile(project, spec)
    assert dockerfile == (project.root / "build" / "Dockerfile").resolve()
    assert not (project.root / "Dockerfile.leoflow").exists()
    build_image(project, spec, image="local/own:1", dockerfile=dockerfile, console=quiet_console())
    assert "hi from helpers" in _run(docker_host, "local/own:1", "cat /srv/helpers.py")


def _retag(engine: Engine, source: str, target: str) -> None:
    client = engine.client()
    try:
        repo, _, tag = target.rpartition(":")
        client.images.get(source).tag(repo, tag)
    finally:
        client.close()


@pytest.fixture
def built(docker_host: Engine, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small image in the test engine to push around."""
    project = make_project(tmp_path_factory.mktemp("push") / "demo", "local/push")
    spec = make_spec(project)
    build_image(
        project,
        spec,
        image="local/push:1",
        dockerfile=write_dockerfile(project, spec),
        console=quiet_console(),
    )
    return "local/push:1"


def test_push_to_an_unreachable_registry_names_it(docker_host: Engine, built: str) -> None:
    target = f"127.0.0.1:{free_port()}/leoflow/demo:1"
    _retag(docker_host, built, target)
    with pytest.raises(BuildError) as err:
        push_image(target, console=quiet_console())
    assert f"registry {target.split('/')[0]} is unreachable" in str(err.value)


def test_push_needs_credentials_from_the_docker_config(
    docker_host: Engine,
    built: str,
    auth_registry: Registry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = f"{auth_registry.address}/leoflow/demo:1"
    _retag(docker_host, built, target)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "empty"))
    with pytest.raises(BuildError) as err:
        push_image(target, console=quiet_console())
    assert f"registry {auth_registry.address} refused the push" in str(err.value)
    assert f"docker login {auth_registry.address}" in str(err.value)

    config = tmp_path / "docker"
    config.mkdir()
    token = base64.b64encode(b"leoflow:leoflow-test").decode()
    (config / "config.json").write_text(
        json.dumps({"auths": {auth_registry.address: {"auth": token}}})
    )
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    pinned = push_image(target, console=quiet_console())
    assert pinned.startswith(f"{auth_registry.address}/leoflow/demo@sha256:")


def test_dependencies_install_into_the_dag_venv_through_the_host_ca_bundle(
    docker_host: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The TLS here is re-signed: the build trusts the host's bundle via LEOFLOW_BUILD_CA_BUNDLE.
    bundle = next(
        p
        for p in ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")
        if Path(p).is_file()
    )
    monkeypatch.setenv("LEOFLOW_BUILD_CA_BUNDLE", bundle)
    project = make_project(
        tmp_path / "deps", "local/deps", extra_yaml="dependencies: [six==1.17.0]\n"
    )
    spec = make_spec(project)
    build_image(
        project,
        spec,
        image="local/deps:1",
        dockerfile=write_dockerfile(project, spec),
        console=quiet_console(),
    )
    out = _run(
        docker_host,
        "local/deps:1",
        "cd / && $LEOFLOW_DAG_PYTHON -c 'import six, leoflow.sdk; print(six.__version__)' && "
        "($LEOFLOW_DAG_PYTHON -c 'import pydantic' 2>/dev/null || echo no-pydantic)",
    )
    assert out.split() == ["1.17.0", "no-pydantic"]
