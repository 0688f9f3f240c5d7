"""`leoflow db ...`: database maintenance (migrations)."""

from __future__ import annotations

from typing import Annotated

import typer

from leoflow.errors import LeoflowError

db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)


@db_app.command("migrate")
def migrate_command(
    ctx: typer.Context,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            envvar="LEOFLOW_DATABASE_URL",
            help="Postgres DSN, e.g. postgresql://user:pass@host:5432/leoflow.",
            show_envvar=True,
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for the connection.")
    ] = 10.0,
) -> None:
    """Apply pending database migrations (safe to run concurrently and repeatedly)."""
    from leoflow.store.db import redact_dsn
    from leoflow.store.migrate import migrate_sync

    if not database_url:
        raise LeoflowError(
            "no database given",
            field="LEOFLOW_DATABASE_URL",
            hint="pass --database-url or set LEOFLOW_DATABASE_URL",
        )
    applied = migrate_sync(database_url, timeout=timeout)
    obj = getattr(ctx, "obj", None)

    def echo(line: str) -> None:
        if obj is None:
            typer.echo(line)
        else:
            obj.console.print(line, soft_wrap=True, highlight=False, markup=False)

    target = redact_dsn(database_url)
    if applied:
        for label in applied:
            echo(f"applied {label}")
        echo(f"{len(applied)} migration(s) applied to {target}")
    else:
        echo(f"database {target} is up to date")


def register(app: typer.Typer) -> None:
    """Attach `leoflow db` to the root app."""
    app.add_typer(db_app, name="db")
