"""`leoflow init NAME`: scaffold a runnable starter project from templates/init/."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from leoflow.errors import ProjectError

_PLACEHOLDER = "{{dag_id}}"


def templates_dir() -> Path:
    """templates/init in a source checkout, or leoflow/_templates/init in an installed wheel."""
    import leoflow

    package = Path(leoflow.__file__).resolve().parent
    for candidate in (package.parent / "templates" / "init", package / "_templates" / "init"):
        if candidate.is_dir():
            return candidate
    raise ProjectError(
        "the project templates are missing from this installation",
        path=str(package / "_templates"),
        hint="reinstall leoflow",
    )


def scaffold(name: str, target: Path, *, declarative: bool = False) -> list[Path]:
    """Write the starter project for DAG ``name`` into ``target``; return the files written."""
    from leoflow.spec import is_valid_id

    if not is_valid_id(name):
        raise ProjectError(
            f"{name!r} is not a valid dag_id",
            field="NAME",
            hint="use letters, digits, '_', '.' or '-', e.g. `leoflow init my_pipeline`",
        )
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ProjectError(
            "refusing to overwrite: the folder exists and is not empty",
            path=str(target),
            hint="pick another --dir, or remove the folder first",
        )
    source = templates_dir() / ("yaml" if declarative else "python")
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for template in sorted(source.glob("*.tmpl")):
        path = target / template.name.removesuffix(".tmpl")
        text = template.read_text(encoding="utf-8").replace(_PLACEHOLDER, name)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def init_command(
    ctx: typer.Context,
    name: Annotated[
        str,
        typer.Argument(help="The dag_id of the new DAG (also the folder name).", metavar="NAME"),
    ],
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir", help="Where to create the project (default: ./NAME).", file_okay=False
        ),
    ] = None,
    declarative: Annotated[
        bool,
        typer.Option(
            "--yaml", help="Declare the DAG in leoflow.yaml (a `dag:` block) instead of dag.py."
        ),
    ] = False,
) -> None:
    """Create a runnable starter DAG project: leoflow.yaml plus dag.py (or a `dag:` block)."""
    console = ctx.obj.console if ctx.obj is not None else Console()
    target = directory or Path(name)
    written = scaffold(name, target, declarative=declarative)
    console.print(f"[bold green]Created[/] {escape(str(target))}/", highlight=False)
    for path in written:
        console.print(f"  {escape(path.name)}", highlight=False)
    console.print(
        f"Next: [bold]leoflow validate {escape(str(target))}[/] then "
        f"[bold]leoflow compile {escape(str(target))}[/]",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add `init` to the root app."""
    app.command("init", help="Create a runnable starter DAG project from a template.")(init_command)
