"""`leoflow dags list`: registered DAGs with their latest version and state."""

from __future__ import annotations

from typing import Annotated

import typer

from leoflow.cli.auth import (
    DEFAULT_SERVER,
    Output,
    OutputOpt,
    ServerOpt,
    TokenOpt,
    client,
    print_json,
    print_table,
)

dags_app = typer.Typer(help="Registered DAGs.", no_args_is_help=True)


@dags_app.command("list")
def list_dags(
    limit: Annotated[int, typer.Option("--limit", help="How many DAGs.")] = 100,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """List registered DAGs."""
    with client(server, token) as api:
        body = api.get("/api/v2/dags", limit=limit, order_by="dag_id")
    if output is Output.JSON:
        print_json(body)
        return
    rows = [
        [
            d["dag_id"],
            d["bundle_version"],
            "paused" if d["is_paused"] else "active",
            d["timetable_summary"] or "-",
            ", ".join(t["name"] for t in d["tags"]),
            d["next_dagrun_run_after"] or "-",
        ]
        for d in body["dags"]
    ]
    print_table(
        f"DAGs ({body['total_entries']})",
        ["dag_id", "version", "state", "schedule", "tags", "next run"],
        rows,
    )


def register(app: typer.Typer) -> None:
    """Attach `leoflow dags`."""
    app.add_typer(dags_app, name="dags")
