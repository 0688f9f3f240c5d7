"""`leoflow runs trigger|status|list`: start runs and follow them."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any
from urllib.parse import quote

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
from leoflow.errors import LeoflowError
from leoflow.server.client import ApiClient

runs_app = typer.Typer(help="DAG runs.", no_args_is_help=True)
_TERMINAL = {"success", "failed"}


class RunFailed(LeoflowError):
    """A waited-for run ended failed."""

    exit_code = 1


def _run_path(dag_id: str, run_id: str) -> str:
    return f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}"


def _parse_conf(conf: str | None) -> dict[str, Any]:
    if not conf:
        return {}
    try:
        value = json.loads(conf)
    except json.JSONDecodeError as exc:
        raise LeoflowError(
            f"--conf is not valid JSON: {exc.msg}", field="conf", hint="e.g. --conf '{\"x\": 1}'"
        ) from exc
    if not isinstance(value, dict):
        raise LeoflowError(
            "--conf must be a JSON object", field="conf", hint="e.g. --conf '{\"x\": 1}'"
        )
    return value


def _wait(api: ApiClient, dag_id: str, run_id: str, poll: float) -> dict[str, Any]:
    while True:
        run = api.get(_run_path(dag_id, run_id))
        if run["state"] in _TERMINAL:
            return run
        time.sleep(poll)  # the CLI polls a remote server; there is nothing to await locally


@runs_app.command("trigger")
def trigger(
    dag_id: Annotated[str, typer.Argument(help="The DAG to run.")],
    conf: Annotated[str | None, typer.Option("--conf", help="Run conf as a JSON object.")] = None,
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="Run id (default: generated).")
    ] = None,
    note: Annotated[str | None, typer.Option("--note", help="A note on the run.")] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the run to its end; exit 1 if it failed.")
    ] = False,
    poll: Annotated[
        float, typer.Option("--poll", help="Seconds between checks with --wait.")
    ] = 2.0,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Start a run of DAG_ID."""
    body = {"logical_date": None, "conf": _parse_conf(conf), "dag_run_id": run_id, "note": note}
    with client(server, token) as api:
        run = api.post(f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns", body).json()
        if output is Output.TABLE:
            typer.echo(f"triggered {dag_id} run {run['dag_run_id']} ({run['state']})")
        if wait:
            run = _wait(api, dag_id, run["dag_run_id"], poll)
            if output is Output.TABLE:
                typer.echo(f"run {run['dag_run_id']} finished: {run['state']}")
    if output is Output.JSON:
        print_json(run)
    if wait and run["state"] != "success":
        raise RunFailed(
            f"run {run['dag_run_id']} of {dag_id} ended {run['state']}",
            hint=f"see `leoflow runs status {dag_id} {run['dag_run_id']}`",
        )


@runs_app.command("status")
def status(
    dag_id: Annotated[str, typer.Argument(help="The DAG.")],
    run_id: Annotated[str, typer.Argument(help="The run.")],
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """State of one run with its task instances."""
    with client(server, token) as api:
        run = api.get(_run_path(dag_id, run_id))
        tis = api.get(_run_path(dag_id, run_id) + "/taskInstances", limit=1000, order_by="task_id")
    if output is Output.JSON:
        print_json({"dag_run": run, "task_instances": tis["task_instances"]})
        return
    typer.echo(
        f"{dag_id} / {run['dag_run_id']}: {run['state']} (started {run['start_date'] or '-'}, ended {run['end_date'] or '-'})"
    )
    rows = [
        [
            t["task_id"],
            t["map_index"],
            t["state"] or "no status",
            t["try_number"],
            t["start_date"],
            t["duration"],
        ]
        for t in tis["task_instances"]
    ]
    print_table(
        "task instances", ["task_id", "map_index", "state", "try", "started", "duration (s)"], rows
    )


@runs_app.command("list")
def list_runs(
    dag_id: Annotated[str, typer.Argument(help="The DAG (default: all DAGs).")] = "~",
    state: Annotated[
        list[str] | None, typer.Option("--state", help="Only runs in this state (repeatable).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="How many runs.")] = 25,
    server: ServerOpt = DEFAULT_SERVER,
    token: TokenOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Recent runs, newest first."""
    with client(server, token) as api:
        body = api.get(
            f"/api/v2/dags/{quote(dag_id, safe='~')}/dagRuns",
            limit=limit,
            order_by="-run_after",
            state=state,
        )
    if output is Output.JSON:
        print_json(body)
        return
    rows = [
        [r["dag_id"], r["dag_run_id"], r["state"], r["run_type"], r["run_after"], r["duration"]]
        for r in body["dag_runs"]
    ]
    print_table(
        f"runs ({body['total_entries']})",
        ["dag_id", "run_id", "state", "type", "run_after", "duration (s)"],
        rows,
    )


def register(app: typer.Typer) -> None:
    """Attach `leoflow runs`."""
    app.add_typer(runs_app, name="runs")
