"""Build the Leoflow runtime base image (``docker/runtime/Dockerfile``) that DAG images start FROM.

The context is assembled here: the Dockerfile and the ``leoflow`` entry point from
``docker/runtime/``, the stdlib-only slice of this leoflow package (``runtime/``) and,
optionally, the leoflow wheel (``wheels/``) that release builds install for the full agent.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from rich.console import Console

from leoflow import __version__
from leoflow.builder.dockerfile import runtime_image
from leoflow.builder.engine import BuildResult, connect, context_tar, stream_build
from leoflow.builder.runtime_files import copy_runtime
from leoflow.errors import BuildError


def runtime_dockerfile_dir() -> Path:
    """``docker/runtime`` of the source checkout this leoflow runs from."""
    folder = Path(__file__).resolve().parents[2] / "docker" / "runtime"
    if not (folder / "Dockerfile").is_file():
        raise BuildError(
            f"the runtime image's Dockerfile is not here ({folder})",
            hint="build the runtime image from a leoflow source checkout",
        )
    return folder


def build_runtime_image(
    python_version: str,
    *,
    console: Console,
    base_image: str | None = None,
    tag: str | None = None,
    wheel: Path | None = None,
    network_mode: str | None = "host",
) -> BuildResult:
    """Build the runtime base image for ``python_version`` (tagged as DAG images expect)."""
    folder = runtime_dockerfile_dir()
    tag = tag or runtime_image(python_version)
    with tempfile.TemporaryDirectory(prefix="leoflow-runtime-") as tmp:
        slim = copy_runtime(Path(tmp))
        entries: list[tuple[str, Path | bytes]] = [
            ("Dockerfile", folder / "Dockerfile"),
            ("leoflow", folder / "leoflow"),
            ("wheels/.keep", b""),
        ]
        entries += [
            (f"runtime/{p.relative_to(slim).as_posix()}", p)
            for p in sorted(slim.rglob("*"))
            if p.is_file()
        ]
        if wheel is not None:
            entries.append((f"wheels/{wheel.name}", wheel))
        context = context_tar(entries)
    buildargs = {
        "BASE_IMAGE": base_image or f"python:{python_version}-slim-bookworm",
        "LEOFLOW_VERSION": __version__,
    }
    client = connect()
    try:
        return stream_build(
            client,
            context,
            dockerfile="Dockerfile",
            tag=tag,
            console=console,
            buildargs=buildargs,
            network_mode=network_mode,
        )
    finally:
        client.close()
