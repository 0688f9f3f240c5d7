"""`leoflow auth create-token`, and the --server/--token/--output options every API command shares."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from leoflow.server.client import ApiClient

DEFAULT_SERVER = "http://127.0.0.1:8088"

ServerOpt = Annotated[
    str,
    typer.Option(
        "--server", envvar="LEOFLOW_SERVER", help="Control plane URL (env LEOFLOW_SERVER)."
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option("--token", envvar="LEOFLOW_TOKEN", help="API token (env LEOFLOW_TOKEN)."),
]


class Output(StrEnum):
    """How a command prints its result."""

    TABLE = "table"
    JSON = "json"


OutputOpt = Annotated[
    Output, typer.Option("--output", "-o", help="table for people, json for scripts.")
]


def client(server: str, token: str | None) -> ApiClient:
    """An API client for the command's --server/--token."""
    return ApiClient(server, token)


def print_json(value: Any) -> None:
    """Print JSON to stdout (no colours, so scripts can parse it)."""
    typer.echo(json.dumps(value, indent=2, sort_keys=True))


def print_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """Print a rich table."""
    table = Table(title=title, header_style="bold")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    Console().print(table)


auth_app = typer.Typer(help="Log in to a control plane.", no_args_is_help=True)


@auth_app.command("create-token")
def create_token(
    username: Annotated[str, typer.Option("--username", "-u", help="The user to log in as.")],
    password: Annotated[
        str | None,
        typer.Option("--password", "-p", help="Asked for (hidden) when not given."),
    ] = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Tenant (default: default).")
    ] = None,
    server: ServerOpt = DEFAULT_SERVER,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Print an API token (use it as --token or LEOFLOW_TOKEN)."""
    if password is None:
        password = typer.prompt("Password", hide_input=True)
    with client(server, None) as api:
        token = api.login(username, password, tenant)
    if output is Output.JSON:
        print_json({"access_token": token})
    else:
        typer.echo(token)


def register(app: typer.Typer) -> None:
    """Attach `leoflow auth`."""
    app.add_typer(auth_app, name="auth")
