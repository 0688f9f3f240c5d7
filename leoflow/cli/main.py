"""`leoflow` entry point: the root typer app, global options, and error mapping."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Annotated

import typer
from rich.console import Console

from leoflow import __version__
from leoflow.errors import LeoflowError
from leoflow.settings import Settings

app = typer.Typer(
    name="leoflow",
    help="Leoflow: Airflow-style DAGs, compiled once, every task in its own isolated worker.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@dataclass
class CliContext:
    """What every command receives on ``ctx.obj``."""

    settings: Settings
    console: Console
    err: Console
    debug: bool = False


def _version(value: bool) -> None:
    if value:
        typer.echo(f"leoflow {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option("--debug", help="Show full tracebacks on errors.", envvar="LEOFLOW_DEBUG"),
    ] = False,
) -> None:
    """Leoflow command line."""
    ctx.obj = CliContext(
        settings=Settings.from_env(),
        console=Console(),
        err=Console(stderr=True),
        debug=debug,
    )


def _register() -> None:
    """Attach every command module; each exports ``register(app)``."""
    from importlib import import_module

    for name in (
        "compile",
        "init",
        "push",
        "server",
        "runs",
        "dags",
        "auth",
        "db",
        "lite",
        "agent",
        "setup",
        "venv",
    ):
        try:
            module = import_module(f"leoflow.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"leoflow.cli.{name}":
                continue
            raise
        module.register(app)


_register()


def main() -> None:
    """Console-script entry: run the app and turn LeoflowError into a clean message.

    Click's standalone mode handles usage errors and ``typer.Exit`` codes; everything Leoflow
    raises on purpose becomes one ``error:`` line (with its hint) and its exit code.
    """
    debug = "--debug" in sys.argv or os.environ.get("LEOFLOW_DEBUG", "") not in ("", "0")
    try:
        app()
    except LeoflowError as exc:
        if debug:
            raise
        from rich.markup import escape

        Console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
