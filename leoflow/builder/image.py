"""Build and push a DAG's image: names, build context, engine calls, registry errors.

``compile --build --push`` calls, in order: :func:`image_reference`, ``write_dockerfile``,
:func:`build_image` and :func:`push_image`, whose ``name@sha256:...`` goes into dag.json.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import docker
from rich.console import Console
from rich.markup import escape

from leoflow.builder.dockerfile import (
    CA_BUNDLE,
    GENERATED_DOCKERFILE,
    REQUIREMENTS,
    context_files,
    requirements_text,
)
from leoflow.builder.engine import BuildResult, connect, context_tar, stream_build
from leoflow.errors import BuildError
from leoflow.project import LoadedProject
from leoflow.spec import DagSpec

_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
# Dropped from the context by the engine after it read the Dockerfile, so `COPY .` skips them.
_CONTEXT_IGNORE = f"{GENERATED_DOCKERFILE}\n.dockerignore\n".encode()


def _registry_error(project: LoadedProject, message: str, key: str, hint: str) -> BuildError:
    return BuildError(
        message,
        path=str(project.config_path or project.root),
        line=project.line_of("registry", key) if project.config_path else None,
        field=f"registry.{key}",
        hint=hint,
    )


def _git_sha(root: Path) -> str:
    proc = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise BuildError(
            f"tag_strategy git_sha needs a git repository with a commit: {proc.stderr.strip()}",
            field="registry.tag_strategy",
            hint="commit the project, or use tag_strategy: content_hash",
        )
    return proc.stdout.strip()


def image_reference(project: LoadedProject, spec: DagSpec, override: str | None) -> str:
    """``--image`` if given, else ``registry.image`` tagged by ``registry.tag_strategy``."""
    if override:
        return override
    registry = project.config.registry
    if not registry.image:
        raise _registry_error(
            project,
            "no image name for the DAG",
            "image",
            "pass --image REF, or set registry.image in leoflow.yaml (e.g. reg.example/etl)",
        )
    last = registry.image.rsplit("/", 1)[-1]
    if ":" in last or "@" in registry.image:
        raise _registry_error(
            project,
            f"registry.image {registry.image!r} must be a name without tag or digest",
            "image",
            "choose the tag with registry.tag_strategy (and registry.tag when it is fixed)",
        )
    strategy = registry.tag_strategy
    if strategy == "version":
        tag = re.sub(r"[^A-Za-z0-9_.\-]", "-", spec.version)[:128]
    elif strategy == "content_hash":
        tag = spec.content_hash[:12]
    elif strategy == "git_sha":
        tag = _git_sha(project.root)
    else:
        tag = registry.tag or ""
    if not _TAG.match(tag):
        raise _registry_error(
            project,
            f"tag {tag!r} (from tag_strategy {strategy}) is not a valid image tag",
            "tag" if strategy == "fixed" else "tag_strategy",
            "a tag is 1-128 of letters, digits, '_', '.', '-' (set registry.tag for 'fixed')",
        )
    return f"{registry.image}:{tag}"


def _context(project: LoadedProject, dockerfile: Path) -> tuple[Any, str]:
    """The context tar and the Dockerfile's name inside it."""
    generated = dockerfile.resolve() == (project.root / GENERATED_DOCKERFILE).resolve()
    if not generated:
        # The project's own Dockerfile: the project folder is the context, its own
        # .dockerignore applies (docker's rules), the Dockerfile may live elsewhere.
        return None, str(dockerfile)
    entries: list[tuple[str, Path | bytes]] = [
        (rel, project.root / rel) for rel in context_files(project)
    ]
    entries += [
        (GENERATED_DOCKERFILE, dockerfile),
        (".dockerignore", _CONTEXT_IGNORE),
        (REQUIREMENTS, requirements_text(project).encode()),
    ]
    ca = os.environ.get("LEOFLOW_BUILD_CA_BUNDLE")
    if ca:
        if not Path(ca).is_file():
            raise BuildError(
                "LEOFLOW_BUILD_CA_BUNDLE names no file",
                path=ca,
                hint="point it at a PEM bundle, e.g. /etc/ssl/certs/ca-certificates.crt",
            )
        entries.append((CA_BUNDLE, Path(ca)))
    return context_tar(entries), GENERATED_DOCKERFILE


def build_image_result(
    project: LoadedProject,
    spec: DagSpec,
    *,
    image: str,
    dockerfile: Path,
    console: Console,
    network_mode: str | None = "host",
) -> BuildResult:
    """Like :func:`build_image`, returning every step and whether the cache answered it."""
    dockerfile = Path(dockerfile)
    if not dockerfile.is_file():
        raise BuildError("Dockerfile not found", path=str(dockerfile), field="--dockerfile")
    client = connect()
    try:
        fileobj, name = _context(project, dockerfile)
        console.print(f"[bold]building[/] {escape(image)} for DAG {escape(spec.dag_id)}")
        if fileobj is None:
            return _build_path(client, project, dockerfile, image, console, network_mode)
        return stream_build(
            client, fileobj, dockerfile=name, tag=image, console=console, network_mode=network_mode
        )
    finally:
        client.close()


def _build_path(
    client: docker.DockerClient,
    project: LoadedProject,
    dockerfile: Path,
    image: str,
    console: Console,
    network_mode: str | None,
) -> BuildResult:
    from docker.utils.build import tar as docker_tar

    # docker-py's own context packer honours the project's .dockerignore.
    ignore = project.root / ".dockerignore"
    excludes = [
        line.strip()
        for line in (ignore.read_text().splitlines() if ignore.is_file() else [])
        if line.strip() and not line.startswith("#")
    ]
    try:
        rel = dockerfile.resolve().relative_to(project.root).as_posix()
        fileobj = docker_tar(str(project.root), exclude=excludes, gzip=False)
    except ValueError:  # a Dockerfile outside the project travels inside the context
        rel = ".leoflow-external.Dockerfile"
        fileobj = docker_tar(
            str(project.root),
            exclude=excludes,
            gzip=False,
            dockerfile=(rel, dockerfile.read_text(encoding="utf-8")),
        )
    return stream_build(
        client, fileobj, dockerfile=rel, tag=image, console=console, network_mode=network_mode
    )


def build_image(
    project: LoadedProject,
    spec: DagSpec,
    *,
    image: str,
    dockerfile: Path,
    console: Console,
    network_mode: str | None = "host",
) -> str:
    """Build the DAG image through the Docker Engine API; returns the image id.

    ``network_mode`` defaults to ``host``: a build only needs outbound access, and engines run
    without a bridge (``--bridge=none``, rootless) have no other network to offer.
    """
    return build_image_result(
        project,
        spec,
        image=image,
        dockerfile=dockerfile,
        console=console,
        network_mode=network_mode,
    ).image_id


# -- push --------------------------------------------------------------------------------------


def registry_of(image: str) -> str:
    """The registry host of an image reference (docker.io for bare names)."""
    repo, _ = docker.utils.parse_repository_tag(image)
    registry, _ = docker.auth.resolve_repository_name(repo)
    return "docker.io" if registry == docker.auth.INDEX_NAME else registry


_NO_AUTH = ("no basic auth credentials", "unauthorized", "authentication required", "denied")
_UNREACHABLE = (
    "connection refused",
    "no such host",
    "dial tcp",
    "i/o timeout",
    "timeout",
    "server gave http response to https client",
    "network is unreachable",
    "eof",
)


def _push_error(error: str, image: str) -> BuildError:
    registry = registry_of(image)
    lower = error.lower()
    if any(s in lower for s in _NO_AUTH):
        return BuildError(
            f"registry {registry} refused the push of {image}: no or wrong credentials ({error})",
            hint=f"run `docker login {registry}` (leoflow reads the usual docker config: "
            "$DOCKER_CONFIG/config.json or ~/.docker/config.json, credential helpers included)",
        )
    if "x509" in lower or "certificate" in lower:
        return BuildError(
            f"the engine does not trust the TLS certificate of registry {registry}: {error}",
            hint=f"put the registry's CA at /etc/docker/certs.d/{registry}/ca.crt on the engine "
            "host (or add the CA to the host's trust store and restart the engine)",
        )
    if any(s in lower for s in _UNREACHABLE):
        return BuildError(
            f"registry {registry} is unreachable: {error}",
            hint=f"check that {registry} is up and reachable from the engine; a plain-HTTP "
            "registry other than localhost must be listed in the engine's insecure-registries",
        )
    return BuildError(f"pushing {image} to {registry} failed: {error}")


# "<tag>: digest: sha256:<hex> size: <n>": dockerd also sends it as aux, podman (4.x) only so.
_DIGEST_STATUS = re.compile(r"\bdigest: (sha256:[0-9a-f]{64})\b")


def _pushed_digest(message: dict[str, Any]) -> str:
    """The manifest digest a push progress message reports, or ``""``."""
    aux = message.get("aux")
    if isinstance(aux, dict) and aux.get("Digest"):
        return str(aux["Digest"])
    found = _DIGEST_STATUS.search(str(message.get("status", "")))
    return found[1] if found else ""


def push_image(image: str, *, console: Console) -> str:
    """Push ``image``; returns ``name@sha256:<digest>`` as the registry stored it."""
    repo, tag = docker.utils.parse_repository_tag(image)
    client = connect()
    digest = ""
    try:
        console.print(f"[bold]pushing[/] {escape(image)} to {registry_of(image)}")
        with console.status(f"pushing {image}"):
            for msg in client.api.push(repo, tag=tag or "latest", stream=True, decode=True):
                if msg.get("error") or msg.get("errorDetail"):
                    detail = msg.get("errorDetail") or {}
                    raise _push_error(str(msg.get("error") or detail.get("message")), image)
                digest = _pushed_digest(msg) or digest
    except docker.errors.APIError as exc:
        raise _push_error(str(exc.explanation or exc), image) from exc
    finally:
        client.close()
    if not digest.startswith("sha256:"):
        raise BuildError(f"the engine pushed {image} but reported no digest")
    pinned = f"{repo}@{digest}"
    console.print(f"[green]pushed[/] {escape(pinned)}")
    return pinned
