"""`leoflow lite [PROJECT_DIR ...]` and `leoflow lite reset-password`.

One command rather than a group: a group's variadic PROJECT_DIR argument would swallow the
sub-command's name, so ``reset-password`` is recognised as the first word (unless a folder of
that name exists, which then is a project as asked).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from leoflow.settings import Settings

RESET_PASSWORD = "reset-password"


def _context(ctx: typer.Context) -> tuple[Settings, Console]:
    obj = ctx.obj
    settings = getattr(obj, "settings", None) or Settings.from_env()
    console = getattr(obj, "console", None) or Console()
    return settings, console


def _setup_logging(verbose: bool, console: Console) -> None:
    from rich.logging import RichHandler

    handler = RichHandler(console=console, show_path=False, rich_tracebacks=False)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("leoflow").setLevel(logging.INFO if verbose else logging.WARNING)


def lite(
    ctx: typer.Context,
    projects: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="[PROJECT_DIR ...]",
            help="Project folders to register and watch besides LEOFLOW_WORKSPACE; or "
            "`reset-password` to set and print a new admin password (with Lite stopped).",
            show_default=False,
        ),
    ] = None,
    port: Annotated[int, typer.Option("--port", help="HTTP port of the UI and API.")] = 8088,
    host: Annotated[
        str, typer.Option("--host", help="Bind address (0.0.0.0 for every interface).")
    ] = "127.0.0.1",
    executor: Annotated[
        str, typer.Option("--executor", help="How tasks run (Lite: process).")
    ] = "process",
    username: Annotated[
        str | None,
        typer.Option(
            "--username", help="reset-password: the account (default LEOFLOW_BOOTSTRAP_USERNAME)."
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what Lite does.")] = False,
) -> None:
    """Run Leoflow Lite in the foreground: datastores, API and UI, scheduler, hot reload.

    The UI and API answer on http://127.0.0.1:8088; Ctrl-C stops everything it started.
    """
    paths = list(projects or [])
    if paths and str(paths[0]) == RESET_PASSWORD and not paths[0].exists():
        if len(paths) > 1:
            raise typer.BadParameter("reset-password takes no folders", param_hint="PROJECT_DIR")
        reset_password(ctx, username)
        return
    from leoflow.lite.supervisor import LiteOptions, LiteSupervisor

    settings, console = _context(ctx)
    _setup_logging(verbose, console)
    options = LiteOptions(host=host, port=port, executor=executor, projects=paths)
    supervisor = LiteSupervisor(settings, options, console)
    try:
        asyncio.run(supervisor.run())
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        raise SystemExit(130) from None
    console.print("[dim]Leoflow Lite stopped.[/]")


def reset_password(ctx: typer.Context, username: str | None = None) -> None:
    """Set and print a new admin password (refused while Lite runs on this home)."""
    from leoflow.lite.admin import reset_admin_password

    settings, console = _context(ctx)
    user, password = reset_admin_password(settings, username)
    console.print(f"new password for [bold]{user}[/]: [bold yellow]{password}[/]", highlight=False)
    console.print("[dim]only its hash is stored: keep it somewhere safe.[/]")


def register(app: typer.Typer) -> None:
    """Attach `leoflow lite` to the root app."""
    app.command(
        "lite",
        context_settings={"allow_interspersed_args": True},
    )(lite)
