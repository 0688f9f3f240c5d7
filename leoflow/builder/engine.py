"""Finding a container engine and streaming a build through the Docker Engine API.

Works against dockerd and against podman's Docker-compatible service (``podman system
service``); both speak the same /build and /push endpoints. The build context is sent as a tar
we assemble ourselves, so ``include``/``exclude`` of leoflow.yaml decide exactly what goes in.
"""

from __future__ import annotations

import io
import os
import re
import tarfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import docker
from rich.console import Console
from rich.markup import escape

from leoflow.errors import BuildError

DEFAULT_SOCKETS = (
    "/var/run/docker.sock",
    "{xdg}/docker.sock",  # rootless dockerd
    "{xdg}/podman/podman.sock",  # rootless podman
    "/run/podman/podman.sock",
)
START_HINT = (
    "start an engine and point DOCKER_HOST at it, e.g. as root: "
    "`dockerd --iptables=false --bridge=none &` (socket unix:///var/run/docker.sock), or "
    "`podman system service --time=0 unix:///tmp/podman.sock &` then "
    "`export DOCKER_HOST=unix:///tmp/podman.sock`"
)
_STEP = re.compile(r"^(?:Step|STEP) (\d+)/(\d+) ?: ?(.*)$")
_CACHED = re.compile(r"^\s*-+> Using cache")
_QUIET = (
    "--->",
    "-->",
    "Successfully built",
    "Successfully tagged",
    "Removing intermediate",
    "COMMIT",
)


def engine_host(env: dict[str, str] | None = None) -> tuple[str, str]:
    """``(base_url, how it was chosen)``: DOCKER_HOST, else the first socket that exists."""
    env = dict(os.environ) if env is None else env
    if env.get("DOCKER_HOST"):
        return env["DOCKER_HOST"], f"DOCKER_HOST={env['DOCKER_HOST']}"
    xdg = env.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    for pattern in DEFAULT_SOCKETS:
        sock = pattern.format(xdg=xdg)
        if Path(sock).exists():
            return f"unix://{sock}", f"the default socket unix://{sock} (DOCKER_HOST unset)"
    return "unix:///var/run/docker.sock", (
        "the default socket unix:///var/run/docker.sock (DOCKER_HOST unset; no docker or podman "
        "socket found)"
    )


def connect(timeout: int = 1800) -> docker.DockerClient:
    """A client for the reachable engine, or BuildError naming what was tried."""
    host, how = engine_host()
    env = {**os.environ, "DOCKER_HOST": host}
    try:
        client = docker.from_env(environment=env, timeout=timeout)
        client.ping()
    except Exception as exc:  # docker raises DockerException, requests errors or OSError
        raise BuildError(
            f"no container engine reachable at {how}: {_short(exc)}", hint=START_HINT
        ) from exc
    return client


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1][:300] if text else type(exc).__name__


# -- build context -----------------------------------------------------------------------------


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 0  # reproducible context: the same files give the same layer
    tar.addfile(info, io.BytesIO(data))


def context_tar(files: Iterable[tuple[str, Path | bytes]]) -> IO[bytes]:
    """A build-context tar of ``(name in context, file path or bytes)``; executables keep +x."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, src in files:
            if isinstance(src, bytes):
                _add(tar, name, src)
            else:
                mode = 0o755 if os.access(src, os.X_OK) else 0o644
                _add(tar, name, src.read_bytes(), mode)
    buf.seek(0)
    return buf


# -- build -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildStep:
    """One Dockerfile instruction as the engine ran it."""

    number: int
    instruction: str
    cached: bool


@dataclass
class BuildResult:
    """What a build produced: the image id and, per step, whether the cache answered."""

    image_id: str
    steps: list[BuildStep] = field(default_factory=list)
    seconds: float = 0.0


class _StepLog:
    """Turns the engine's stream into steps, rich output and a result."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.steps: list[BuildStep] = []
        self.image_id = ""
        self.tail: list[str] = []

    def feed(self, message: dict[str, Any]) -> None:
        if "error" in message or "errorDetail" in message:
            detail = message.get("errorDetail") or {}
            error = message.get("error") or detail.get("message") or "build failed"
            raise BuildError(
                f"the image build failed: {error.strip()}\n" + "\n".join(self.tail[-15:]),
                hint="the lines above are the engine's output for the failing step",
            )
        aux = message.get("aux")
        if isinstance(aux, dict) and aux.get("ID"):
            self.image_id = str(aux["ID"])
        for line in str(message.get("stream", "")).splitlines():
            self._line(line)

    def _line(self, line: str) -> None:
        if not line.strip():
            return
        self.tail = [*self.tail[-40:], line]
        step = _STEP.match(line)
        if step:
            number, total = int(step[1]), int(step[2])
            instruction = " ".join(step[3].split())
            self.steps.append(BuildStep(number, instruction, cached=False))
            self.console.print(f"[cyan]{number}/{total}[/] {escape(instruction[:120])}")
        elif _CACHED.match(line) and self.steps:
            last = self.steps[-1]
            self.steps[-1] = BuildStep(last.number, last.instruction, cached=True)
            self.console.print("      [dim]cached[/]")
        elif not line.strip().startswith(_QUIET):
            self.console.print(f"      [dim]{escape(line[:200])}[/]", highlight=False)


def stream_build(
    client: docker.DockerClient,
    context: IO[bytes],
    *,
    dockerfile: str,
    tag: str,
    console: Console,
    buildargs: dict[str, str] | None = None,
    network_mode: str | None = "host",
) -> BuildResult:
    """Send a context tar to the engine, print its steps as they run, return the result."""
    started = time.monotonic()
    log = _StepLog(console)
    try:
        stream: Iterator[dict[str, Any]] = client.api.build(
            fileobj=context,
            custom_context=True,
            dockerfile=dockerfile,
            tag=tag,
            rm=True,
            forcerm=True,
            decode=True,
            buildargs=buildargs or {},
            network_mode=network_mode,
        )
        with console.status(f"building {tag}"):
            for message in stream:
                log.feed(message)
    except docker.errors.APIError as exc:
        raise BuildError(f"the engine refused the build: {exc.explanation or exc}") from exc
    image_id = log.image_id or str(client.images.get(tag).id)
    result = BuildResult(image_id, log.steps, time.monotonic() - started)
    cached = sum(s.cached for s in log.steps)
    console.print(
        f"[green]built[/] {escape(tag)} ({image_id[:19]}) in {result.seconds:.1f}s, "
        f"{cached} cached step(s)"
    )
    return result
