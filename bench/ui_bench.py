"""Benchmark: the UI's grid endpoints on a 200-task DAG with 25 runs, and /ui/dags with 1,000 DAGs.

Airflow 3's own grid becomes unusable around this size; the target here is every call under
200 ms. Seeds a fresh database directly through the store (200 tasks in 10 task groups, 25
finished runs = 5,000 task instances; then 1,000 two-task DAGs with one run each), starts the
real server (``leoflow server``) as a child process on a loopback port, and times each call the
UI makes from this process with a keep-alive HTTP client (``--repeat`` times each), printing p50/p95/max.

    python bench/ui_bench.py [--tasks 200] [--runs 25] [--dags 1000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import asyncpg
import httpx

from leoflow.server.auth import Principal, TokenIssuer
from leoflow.settings import Settings
from leoflow.spec import DagSpec, finalize
from leoflow.store import Store, migrate_sync
from leoflow.store.api import DEFAULT_TENANT, DagRunState, Role

PG = os.environ.get("LEOFLOW_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
SECRET = "ui-bench-secret-0123456789abcdef0123456789"
BIG = "big_grid"
TARGET_MS = 200.0
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def big_spec(n_tasks: int, group_size: int = 20) -> DagSpec:
    """A chain of groups: each group fans out from its first task; groups run one after another."""
    tasks: list[dict[str, Any]] = []
    for i in range(n_tasks):
        group = f"stage{i // group_size:02d}"
        first = f"stage{i // group_size:02d}.t{(i // group_size) * group_size:03d}"
        task: dict[str, Any] = {
            "task_id": f"{group}.t{i:03d}",
            "type": "empty",
            "operator": "EmptyOperator",
            "task_group": group,
        }
        if i % group_size:
            task["upstream"] = [first]
        elif i:
            task["upstream"] = [t["task_id"] for t in tasks[-(group_size - 1) :]]
        tasks.append(task)
    return finalize(DagSpec.model_validate({"dag_id": BIG, "tasks": tasks}))


def small_spec(i: int) -> DagSpec:
    """One of the 1,000 list DAGs."""
    body = {
        "dag_id": f"dag_{i:04d}",
        "tags": [f"team{i % 10}"],
        "tasks": [
            {"task_id": "a", "type": "empty", "operator": "EmptyOperator"},
            {"task_id": "b", "type": "empty", "operator": "EmptyOperator", "upstream": ["a"]},
        ],
    }
    return finalize(DagSpec.model_validate(body))


async def seed(dsn: str, n_tasks: int, n_runs: int, n_dags: int) -> list[str]:
    """Register the DAGs and finish their runs (bulk marks); returns the big DAG's run ids."""
    store = await Store.connect(dsn, settings=Settings(), max_size=8)
    try:
        await store.register_version(DEFAULT_TENANT, big_spec(n_tasks))
        run_ids = []
        for i in range(n_runs):
            at = T0 + timedelta(hours=i)
            run = await store.create_run(DEFAULT_TENANT, BIG, logical_date=at, now=at)
            await store.transition_run(run.id, DagRunState.RUNNING, now=at)
            state = DagRunState.FAILED if i % 5 == 4 else DagRunState.SUCCESS
            await store.patch_run(DEFAULT_TENANT, BIG, run.run_id, state=state, now=at)
            run_ids.append(run.run_id)
        limit = asyncio.Semaphore(8)

        async def one(i: int) -> None:
            async with limit:
                spec = small_spec(i)
                await store.register_version(DEFAULT_TENANT, spec)
                run = await store.create_run(DEFAULT_TENANT, spec.dag_id, logical_date=T0, now=T0)
                await store.patch_run(
                    DEFAULT_TENANT, spec.dag_id, run.run_id, state=DagRunState.SUCCESS
                )

        await asyncio.gather(*(one(i) for i in range(n_dags)))
        # Steady state: autovacuum would have analyzed these tables a minute after the load.
        await store.pool.execute("ANALYZE")
        return run_ids
    finally:
        await store.close()


def serve(dsn: str) -> tuple[str, subprocess.Popen[bytes]]:
    """``leoflow server`` in its own process (as deployed), on a free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "LEOFLOW_DATABASE_URL": dsn,
        "LEOFLOW_AUTH_JWT_SECRET": SECRET,
        "LEOFLOW_HOME": "/tmp/leoflow-ui-bench",
    }
    env.pop("LEOFLOW_REDIS_URL", None)
    command = [sys.executable, "-m", "leoflow.cli.main", "server", "--port", str(port)]
    server = subprocess.Popen([*command, "--log-level", "warning"], env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(base + "/api/v2/version").status_code == 200:
                return base, server
        except httpx.TransportError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not start") from None
            time.sleep(0.1)  # polling the port until the server answers


def timed(client: httpx.Client, url: str, repeat: int) -> list[float]:
    """Milliseconds of ``repeat`` GETs (after one warm-up call)."""
    first = client.get(url)
    first.raise_for_status()
    out = []
    for _ in range(repeat):
        began = time.perf_counter()
        client.get(url).raise_for_status()
        out.append((time.perf_counter() - began) * 1000)
    return out


def report(name: str, samples: list[float]) -> bool:
    """Print one line of figures; True when the worst call is under the target."""
    ordered = sorted(samples)
    p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
    ok = ordered[-1] < TARGET_MS
    print(
        f"{name:<58} p50 {statistics.median(ordered):7.1f} ms  p95 {p95:7.1f} ms  "
        f"max {ordered[-1]:7.1f} ms  {'ok' if ok else 'OVER ' + str(TARGET_MS)}"
    )
    return ok


def main() -> int:
    """Seed, serve, measure, print; exit 1 when a call exceeded the target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--dags", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    name = f"leoflow_uibench_{uuid.uuid4().hex[:8]}"
    dsn = PG.rsplit("/", 1)[0] + "/" + name
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        migrate_sync(dsn)
        began = time.perf_counter()
        run_ids = asyncio.run(seed(dsn, args.tasks, args.runs, args.dags))
        print(f"seeded {args.tasks} tasks x {args.runs} runs and {args.dags} DAGs "
              f"in {time.perf_counter() - began:.1f} s")  # fmt: skip
        base, server = serve(dsn)
        token = TokenIssuer(SECRET, 3600).mint(Principal("bench", DEFAULT_TENANT, Role.VIEWER))
        try:
            with httpx.Client(
                base_url=base, headers={"Authorization": f"Bearer {token}"}
            ) as client:
                return 0 if measure(client, run_ids, args.repeat) else 1
        finally:
            server.terminate()
            server.wait(timeout=30)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def measure(client: httpx.Client, run_ids: list[str], repeat: int) -> bool:
    """Time the DAG page's grid calls and the DAG list's calls."""
    runs = urlencode([("run_ids", r) for r in run_ids])  # "+" in run ids must be %2B
    calls = [
        ("grid runs (25)", f"/ui/grid/runs/{BIG}?limit=25&order_by=-run_after"),
        ("grid structure (200 tasks, 10 groups)", f"/ui/grid/structure/{BIG}?limit=25&order_by=-run_after"),
        ("grid ti_summaries NDJSON (25 runs x 200 TIs)", f"/ui/grid/ti_summaries/{BIG}?{runs}"),
        ("grid ti_summaries NDJSON (1 run)", f"/ui/grid/ti_summaries/{BIG}?{urlencode({'run_ids': run_ids[-1]})}"),
        ("graph structure_data (200 nodes)", f"/ui/structure/structure_data?dag_id={BIG}&version_number=1"),
        ("latest_run", f"/ui/dags/{BIG}/latest_run"),
        ("/ui/dags first page (1,001 DAGs, 14 runs each)", "/ui/dags?dag_runs_limit=14&limit=50&offset=0&tags_match_mode=any&exclude_stale=true&order_by=dag_display_name"),
        ("/ui/dags last page", "/ui/dags?dag_runs_limit=14&limit=50&offset=950&order_by=dag_display_name"),
        ("/ui/dags sorted by latest run start (whole list)", "/ui/dags?dag_runs_limit=14&limit=50&order_by=-last_run_start_date"),
        ("/ui/dags search + tag filter", "/ui/dags?dag_runs_limit=14&limit=50&dag_id_pattern=dag_09&tags=team1"),
        ("/ui/dashboard/dag_stats (1,001 DAGs)", "/ui/dashboard/dag_stats"),
        ("/ui/dashboard/historical_metrics_data", "/ui/dashboard/historical_metrics_data?start_date=2025-01-01T00:00:00Z"),
    ]  # fmt: skip
    cells = client.get(calls[2][1]).text.splitlines()
    per_run = {len(json.loads(line)["task_instances"]) for line in cells}
    print(f"ti_summaries: {len(cells)} lines, {per_run} entries each (tasks + groups)")
    ok = True
    for name, url in calls:
        ok = report(name, timed(client, url, repeat)) and ok
    print(f"every call under {TARGET_MS:.0f} ms: {'yes' if ok else 'NO'}")
    return ok


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


if __name__ == "__main__":
    sys.exit(main())
