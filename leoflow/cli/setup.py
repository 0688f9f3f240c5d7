"""`leoflow setup` (prepare this machine for Lite) and `leoflow doctor` (diagnose it)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from leoflow.lite.doctor import Check
from leoflow.settings import Settings

_STYLE = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[bold red]FAIL[/]"}


def _context(ctx: typer.Context) -> tuple[Settings, Console]:
    obj = ctx.obj
    settings = getattr(obj, "settings", None) or Settings.from_env()
    console = getattr(obj, "console", None) or Console()
    return settings, console


def _table(checks: list[Check]) -> Table:
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(no_wrap=True)
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for check in checks:
        detail = escape(check.detail)
        if check.fix:
            detail += f"\n[dim]fix:[/] {escape(check.fix)}"
        table.add_row(_STYLE[check.status.value], check.name, detail)
    return table


def setup(
    ctx: typer.Context,
    skip_ui: Annotated[
        bool, typer.Option("--skip-ui", help="Do not download the Airflow UI bundle.")
    ] = False,
    skip_datastores: Annotated[
        bool,
        typer.Option("--skip-datastores", help="Do not initialise the embedded Postgres/Redis."),
    ] = False,
    skip_venvs: Annotated[
        bool, typer.Option("--skip-venvs", help="Do not pre-build the projects' venvs.")
    ] = False,
) -> None:
    """Prepare this machine for Leoflow Lite: checks, home, workspace, UI, datastores, venvs."""
    from leoflow.lite.doctor import Status, setup_steps

    settings, console = _context(ctx)
    failed = False
    steps = setup_steps(
        settings,
        ui=not skip_ui,
        datastores=not skip_datastores,
        venvs=not skip_venvs,
    )
    for title, action in steps:
        with console.status(title):
            found = action()
        checks = found if isinstance(found, list) else [found]
        console.print(f"[bold]{title}[/]")
        if checks:
            console.print(_table(checks))
        failed = failed or any(c.status is Status.FAIL for c in checks)
    if failed:
        console.print("[bold red]setup is incomplete:[/] fix the problems above and run it again")
        # SystemExit, not typer.Exit: the root app runs click with standalone_mode=False,
        # where an Exit's code is returned and lost instead of becoming the exit status.
        raise SystemExit(1)
    console.print("[bold green]ready.[/] Start Leoflow Lite with: [bold]leoflow lite[/]")


def doctor(
    ctx: typer.Context,
    port: Annotated[int, typer.Option("--port", help="The port Lite serves on.")] = 8088,
) -> None:
    """Diagnose this machine: what is installed and running, and how to fix each problem."""
    from leoflow.lite.doctor import Status
    from leoflow.lite.doctor import doctor as run_checks

    settings, console = _context(ctx)
    checks = run_checks(settings, port)
    console.print(_table(checks))
    problems = [c for c in checks if c.status is Status.FAIL]
    if problems:
        console.print(f"[bold red]{len(problems)} problem(s)[/]: see the fixes above")
        raise SystemExit(1)
    console.print("[green]no problems found[/]")


def register(app: typer.Typer) -> None:
    """Attach `leoflow setup` and `leoflow doctor`."""
    app.command("setup")(setup)
    app.command("doctor")(doctor)
