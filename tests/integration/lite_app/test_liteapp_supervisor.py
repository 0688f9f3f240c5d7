"""Lite end to end in one process: start, log in, run the map-reduce, hot reload, stop."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
from liteapp_helpers import LiteRun, descendants, start_lite, wait_for

DAG_ID = "ml_hparam_search"


def _trigger_and_wait(api: httpx.Client, dag_id: str) -> dict[str, Any]:
    created = api.post(f"/dags/{dag_id}/dagRuns", json={"logical_date": None})
    assert created.status_code == 200, created.text
    run_id = created.json()["dag_run_id"]

    def finished() -> dict[str, Any] | None:
        run = api.get(f"/dags/{dag_id}/dagRuns/{run_id}").json()
        return run if run["state"] in ("success", "failed") else None

    return wait_for(finished, 120, f"run {run_id} to finish")


def _reduced(api: httpx.Client, run_id: str) -> Any:
    entry = api.get(
        f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/select_best/xcomEntries/return_value"
    )
    assert entry.status_code == 200, entry.text
    return entry.json()["value"]


def _versions(api: httpx.Client) -> int:
    return api.get(f"/dags/{DAG_ID}/dagVersions").json()["total_entries"]


def _import_errors(api: httpx.Client) -> list[dict[str, Any]]:
    return api.get("/importErrors").json()["import_errors"]


def test_liteapp_runs_map_reduce_and_hot_reloads(
    new_home: Callable[[], tuple[Path, Path]], pg_template: Path
) -> None:
    before = descendants()
    home, workspace = new_home()
    lite: LiteRun = start_lite(home, workspace, pg_template)
    try:
        pg_pid = lite.supervisor.datastores.postgres.pid  # type: ignore[union-attr]
        redis_pid = lite.supervisor.datastores.redis.pid  # type: ignore[union-attr]
        health = httpx.get(f"{lite.url}/api/v2/monitor/health").json()
        assert health["metadatabase"]["status"] == "healthy"
        assert lite.supervisor.app.state.instance_name == "Leoflow Lite"
        # The first start copied the examples and registered every one of them.
        assert (workspace / DAG_ID / "dag.py").is_file()
        with lite.client() as api:
            dags = {d["dag_id"] for d in api.get("/dags").json()["dags"]}
            assert {"hello", "etl", DAG_ID, "branching", "yaml_pipeline"} <= dags
            run = _trigger_and_wait(api, DAG_ID)
            assert run["state"] == "success"
            assert _reduced(api, run["dag_run_id"]) == {"lr": 0.01, "loss": 0.050045}
            line = rf"run {DAG_ID} \S+ \(v1\): running -> success"
            wait_for(lambda: re.search(line, lite.output.getvalue()), 10, "the run's console line")

            # Save an edit: a new version is registered and the next run uses it.
            dag_py = workspace / DAG_ID / "dag.py"
            good = dag_py.read_text().replace("0.01, 0.03", "0.01, 0.02, 0.03")
            dag_py.write_text(good)
            wait_for(lambda: _versions(api) == 2, 30, "version 2")
            run = _trigger_and_wait(api, DAG_ID)
            assert run["state"] == "success"
            assert _reduced(api, run["dag_run_id"]) == {"lr": 0.02, "loss": 0.05}
            bundles = sorted((home / "bundles" / DAG_ID).iterdir())
            assert len(bundles) == 2  # each version keeps its own immutable copy

            # A broken save: an import error; version 2 stays current and still runs.
            dag_py.write_text(good + "\ndef broken(:\n")
            errors = wait_for(lambda: _import_errors(api), 30, "the import error")
            assert errors[0]["filename"] == str((workspace / DAG_ID / "dag.py").resolve())
            assert "dag.py" in errors[0]["stack_trace"]
            assert "import error" in lite.output.getvalue()
            run = _trigger_and_wait(api, DAG_ID)
            assert run["state"] == "success"
            assert _versions(api) == 2

            # Fixing it clears the error (same content as v2: no new version).
            dag_py.write_text(good)
            wait_for(lambda: not _import_errors(api), 30, "the import error to clear")
            assert _versions(api) == 2
    finally:
        lite.stop()
    assert not lite.errors
    assert not psutil.pid_exists(pg_pid) or psutil.Process(pg_pid).status() == "zombie"
    assert not psutil.pid_exists(redis_pid) or psutil.Process(redis_pid).status() == "zombie"
    assert descendants() <= before, "Lite left processes behind"
