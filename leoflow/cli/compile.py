"""`leoflow compile` and `leoflow validate`: dag.py + leoflow.yaml -> dag.json (and an image)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from leoflow.errors import BuildError

if TYPE_CHECKING:
    from leoflow.compiler import CompileResult
    from leoflow.project import LoadedProject
    from leoflow.spec import DagSpec

ProjectDir = Annotated[
    Path,
    typer.Argument(
        help="The project folder holding leoflow.yaml and dag.py (or a `dag:` block).",
        file_okay=False,
        metavar="PROJECT_DIR",
    ),
]
DagVersion = Annotated[
    str | None,
    typer.Option(
        "--dag-version",
        help="Version label written to dag.json (default: 'h' + the first 12 hex digits of the "
        "content hash).",
    ),
]
Python = Annotated[
    str | None,
    typer.Option(
        "--python",
        help="Interpreter that runs dag.py once (e.g. the DAG's .venv/bin/python, so top-level "
        "imports of its dependencies work). Default: the one running leoflow.",
    ),
]


def _consoles(ctx: typer.Context) -> tuple[Console, Console]:
    obj = ctx.obj
    if obj is None:  # called without the root callback (e.g. a bare sub-app in tests)
        return Console(), Console(stderr=True)
    return obj.console, obj.err


def compile_command(
    ctx: typer.Context,
    project_dir: ProjectDir = Path("."),
    output: Annotated[
        Path | None,
        typer.Option(
            "-o", "--output", help="Where to write dag.json (default: PROJECT_DIR/dag.json)."
        ),
    ] = None,
    dag_version: DagVersion = None,
    python: Python = None,
    image: Annotated[
        str | None,
        typer.Option(
            "--image",
            help="Image reference for the DAG's workers (overrides registry.image in "
            "leoflow.yaml). Without --build it is recorded as-is in dag.json.",
        ),
    ] = None,
    build: Annotated[
        bool, typer.Option("--build", help="Build the DAG image with the Docker engine.")
    ] = False,
    push: Annotated[
        bool,
        typer.Option(
            "--push",
            help="Push the built image and pin dag.json to its digest (needs --build).",
        ),
    ] = False,
    dockerfile: Annotated[
        Path | None,
        typer.Option(
            "--dockerfile",
            help="Use this Dockerfile instead of the generated one (default: the project's "
            "`dockerfile:` setting, else a generated Dockerfile.leoflow).",
        ),
    ] = None,
) -> None:
    """Compile a DAG project into dag.json (and optionally build and push its image)."""
    from leoflow.compiler import compile_project

    console, _ = _consoles(ctx)
    if push and not build:
        raise BuildError("--push needs --build", hint="run `leoflow compile --build --push`")
    result = compile_project(project_dir, dag_version=dag_version, python=python)
    spec = result.spec
    dockerfile_path = _write_dockerfile(result.project, spec, dockerfile)
    if build:
        spec = _build(result, image, dockerfile_path, push, dag_version, console)
    elif image:
        spec = _with_image(spec, image, dag_version)
    target = output or result.project.root / "dag.json"
    write_spec(spec, target)
    console.print(_summary(spec, target), highlight=False, soft_wrap=True)
    if dockerfile_path is not None:
        console.print(
            f"  Dockerfile: {escape(str(dockerfile_path))}", highlight=False, soft_wrap=True
        )


def validate_command(
    ctx: typer.Context,
    project_dir: ProjectDir = Path("."),
    python: Python = None,
) -> None:
    """Run every check on leoflow.yaml and the DAG without writing anything."""
    from leoflow.compiler import compile_project

    console, _ = _consoles(ctx)
    result = compile_project(project_dir, python=python)
    spec = result.spec
    _check_dockerfile_renders(result.project, spec)
    console.print(
        f"[bold green]OK[/] {escape(spec.dag_id)}: {len(spec.tasks)} task(s), "
        f"schedule {escape(_schedule_text(spec))}, from {escape(spec.source_file)}",
        highlight=False,
    )


def _check_dockerfile_renders(project: LoadedProject, spec: DagSpec) -> None:
    """Render the generated Dockerfile in memory: bad image settings fail here, not at build."""
    try:
        from leoflow.builder.dockerfile import render_dockerfile
    except ImportError:  # the builder is optional for validation
        return
    if not project.config.dockerfile:
        render_dockerfile(project, spec)


def _summary(spec: DagSpec, target: Path) -> str:
    image = f", image {escape(spec.runtime.image)}" if spec.runtime.image else ""
    return (
        f"[bold green]Compiled[/] {escape(spec.dag_id)}: {len(spec.tasks)} task(s), "
        f"version {escape(spec.version)}{image} -> {escape(str(target))}"
    )


def _schedule_text(spec: DagSpec) -> str:
    sched = spec.schedule
    if sched is None:
        return "none (manual)"
    if sched.type == "cron":
        return sched.expression
    if sched.type == "delta":
        return f"every {sched.seconds:g}s"
    return f"@{sched.type}"


def write_spec(spec: DagSpec, target: Path) -> None:
    """Write the canonical dag.json atomically (a reader never sees half a file)."""
    from leoflow.spec import dumps

    target = target.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".dag.", suffix=".json", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(dumps(spec))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_dockerfile(
    project: LoadedProject, spec: DagSpec, dockerfile: Path | None
) -> Path | None:
    try:
        from leoflow.builder.dockerfile import write_dockerfile
    except ImportError:  # the builder is written in parallel; compile still works without it
        if dockerfile is not None:
            raise BuildError("the image builder is not available in this installation") from None
        return None
    return write_dockerfile(project, spec, dockerfile)


def _build(
    result: CompileResult,
    image: str | None,
    dockerfile: Path | None,
    push: bool,
    dag_version: str | None,
    console: Console,
) -> DagSpec:
    """Build (and push) the DAG image; return the spec pointing at it."""
    project, spec = result.project, result.spec
    if not image and not project.config.registry.image:
        raise BuildError(
            "--build needs an image name",
            path=str(project.config_path or project.root / "leoflow.yaml"),
            field="registry.image",
            hint="pass --image registry.example.com/team/my_dag or set `registry: {image: ...}` "
            "in leoflow.yaml",
        )
    if dockerfile is None:
        raise BuildError("no Dockerfile to build from", hint="pass --dockerfile PATH")
    try:
        from leoflow.builder.image import build_image, image_reference, push_image
    except ImportError as exc:
        raise BuildError(
            f"image building is not available in this installation ({exc})",
            hint="reinstall leoflow with its dependencies (the docker package)",
        ) from exc
    ref = image_reference(project, spec, image)
    build_image(project, spec, image=ref, dockerfile=dockerfile, console=console)
    # A pushed image is pinned by digest; a local-only build is recorded by its tag.
    pinned = push_image(ref, console=console) if push else ref
    return _with_image(spec, pinned, dag_version)


def _with_image(spec: DagSpec, image: str, dag_version: str | None) -> DagSpec:
    from leoflow.spec import finalize

    runtime = spec.runtime.model_copy(update={"image": image})
    return finalize(spec.model_copy(update={"runtime": runtime}), version=dag_version)


def register(app: typer.Typer) -> None:
    """Add `compile` and `validate` to the root app."""
    app.command(
        "compile",
        help="Compile a DAG project (dag.py or a `dag:` block + leoflow.yaml) into dag.json.",
    )(compile_command)
    app.command(
        "validate",
        help="Check leoflow.yaml and the DAG (every compile check) without writing anything.",
    )(validate_command)
