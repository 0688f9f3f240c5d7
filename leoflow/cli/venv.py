"""`leoflow venv ensure PROJECT_DIR`: build (or reuse) a DAG's own virtualenv, as Lite does."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from leoflow.errors import ProjectError
from leoflow.settings import Settings


def ensure_command(
    ctx: typer.Context,
    project_dir: Annotated[Path, typer.Argument(help="The DAG project folder.")] = Path("."),
    dag_id: Annotated[
        str | None, typer.Option("--dag-id", help="Defaults to dag_id in leoflow.yaml.")
    ] = None,
) -> None:
    """Make sure the DAG's venv matches leoflow.yaml (python_version, dependencies)."""
    from leoflow.builder.venv import ensure_venv
    from leoflow.project import load_project

    obj = ctx.obj
    settings: Settings = getattr(obj, "settings", None) or Settings.from_env()
    console: Console = getattr(obj, "console", None) or Console()
    project = load_project(project_dir)
    name = dag_id or project.config.dag_id
    if not name:
        raise ProjectError(
            "no dag_id to name the venv after",
            path=str(project.config_path or project.root),
            field="dag_id",
            hint="set dag_id in leoflow.yaml or pass --dag-id",
        )
    info = ensure_venv(
        settings.home,
        name,
        project.config.python_version,
        list(project.config.dependencies),
        console=console,
    )
    state = "reused" if info.reused else "built"
    console.print(
        f"[green]{state}[/] venv for {escape(name)}: {escape(str(info.python))} "
        f"(Python {info.python_version}, key {info.key})",
        highlight=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    """Attach the `venv` command group."""
    group = typer.Typer(help="Per-DAG virtualenvs (Lite).", no_args_is_help=True)
    group.command("ensure")(ensure_command)
    app.add_typer(group, name="venv")
