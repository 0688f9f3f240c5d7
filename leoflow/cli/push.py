"""`leoflow push DAG_JSON`: register a compiled DAG version with a control plane."""

from __future__ import annotations

from pathlib import Path
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
)
from leoflow.errors import SpecError
from leoflow.spec import loads


def push(
    dag_json: Annotated[Path, typer.Argument(help="The compiled dag.json to register.")],
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Register a compiled DAG version (201 new, 200 when identical content is already there)."""
    try:
        text = dag_json.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(
            f"cannot read the file: {exc.strerror}",
            path=str(dag_json),
            hint="run `leoflow compile` first",
        ) from exc
    spec = loads(text, source=str(dag_json))  # fail here, with file and field, before the network
    with client(server, token) as api:
        response = api.request(
            "POST",
            f"/api/v2/leoflow/dags/{spec.dag_id}/versions",
            content=text.encode(),
            headers={"Content-Type": "application/json"},
        )
    body = response.json()
    if output is Output.JSON:
        print_json(body)
        return
    state = (
        "registered" if body.get("created") else "unchanged (identical version already registered)"
    )
    typer.echo(
        f"{spec.dag_id} version {body.get('version')} (#{body.get('version_number')}): {state}"
    )


def register(app: typer.Typer) -> None:
    """Attach `leoflow push`."""
    app.command("push")(push)
