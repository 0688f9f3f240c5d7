"""Benchmark: GET /api/v2/dags (and /ui/dags when served) with 1,000 registered DAGs.

Starts `leoflow server` as a subprocess on a fresh database, registers 1,000 DAGs through the
API, then loads the list routes from this (second) process with N concurrent clients and prints
requests/s and p50/p99 latency. Target: p99 < 50 ms.

    python bench/api_bench.py [--dags 1000] [--concurrency 16] [--seconds 10] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

import asyncpg
import httpx

from leoflow.spec import DagSpec, dumps, finalize

PG = os.environ.get("LEOFLOW_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("LEOFLOW_TEST_REDIS", "redis://127.0.0.1:6379/0")
PASSWORD = "bench-password-123"


def _spec(i: int) -> str:
    spec = DagSpec.model_validate(
        {
            "dag_id": f"bench_{i:04d}",
            "tags": [f"team{i % 10}"],
            "schedule": {"type": "cron", "expression": "0 * * * *"},
            "tasks": [
                {
                    "task_id": "a",
                    "type": "bash",
                    "operator": "BashOperator",
                    "bash_command": "true",
                },
                {"task_id": "b", "type": "empty", "operator": "EmptyOperator", "upstream": ["a"]},
            ],
        }
    )
    return dumps(finalize(spec))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _register(http: httpx.AsyncClient, count: int, token: str) -> None:
    sem = asyncio.Semaphore(8)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    async def one(i: int) -> None:
        async with sem:
            r = await http.post(
                f"/api/v2/leoflow/dags/bench_{i:04d}/versions", content=_spec(i), headers=headers
            )
            assert r.status_code in (200, 201), r.text

    await asyncio.gather(*(one(i) for i in range(count)))


def _stat(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def _cpu_seconds(pid: int) -> float:
    """User+system CPU time of the server and its worker processes (Linux /proc).

    Server CPU per request is the load-independent figure: latency on 2 shared cores swings
    with what the other processes on the machine do.
    """
    pids = [pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(_stat(int(entry))[1]) == pid:
                    pids.append(int(entry))
            except (OSError, IndexError):
                continue
    ticks = 0
    for p in pids:
        try:
            fields = _stat(p)
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


async def _load(
    http: httpx.AsyncClient,
    path: str,
    token: str,
    concurrency: int,
    seconds: float,
    server_pid: int,
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            r = await http.get(path, headers=headers)
            latencies.append(time.perf_counter() - t0)
            if r.status_code != 200:
                errors += 1

    for _ in range(20):  # warm the pool and caches
        await http.get(path, headers=headers)
    start, cpu0 = time.perf_counter(), _cpu_seconds(server_pid)
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    cpu = _cpu_seconds(server_pid) - cpu0
    latencies.sort()
    return {
        "path": path,
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99) - 1],
        "cpu_ms": 1000 * cpu / max(len(latencies), 1),
    }


async def main(args: argparse.Namespace) -> int:
    db = f"leoflow_bench_{uuid.uuid4().hex[:8]}"
    await _admin(f'CREATE DATABASE "{db}"')
    port = _free_port()
    env = {
        **os.environ,
        "LEOFLOW_DATABASE_URL": PG.rsplit("/", 1)[0] + "/" + db,
        "LEOFLOW_REDIS_URL": REDIS,
        "LEOFLOW_AUTH_JWT_SECRET": uuid.uuid4().hex * 2,
        "LEOFLOW_BOOTSTRAP_PASSWORD": PASSWORD,
        "LEOFLOW_HOME": f"/tmp/{db}",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "leoflow.cli.main",
            "server",
            "--api-only",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--workers",
            str(args.workers),
        ],
        env=env,
    )
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=30, limits=httpx.Limits(max_connections=64)
        ) as http:
            for _ in range(300):
                try:
                    if (await http.get("/api/v2/version")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            token = (
                await http.post("/auth/token", json={"username": "admin", "password": PASSWORD})
            ).json()["access_token"]
            t0 = time.perf_counter()
            await _register(http, args.dags, token)
            print(f"registered {args.dags} DAGs in {time.perf_counter() - t0:.1f} s")
            paths = [
                "/api/v2/dags?limit=50",
                "/api/v2/dags?limit=100&order_by=-dag_id",
                "/api/v2/dags?tags=team3&limit=50",
            ]
            ui = await http.get(
                "/ui/dags?limit=50&dag_runs_limit=14", headers={"Authorization": f"Bearer {token}"}
            )
            if ui.status_code == 200:
                paths.append("/ui/dags?limit=50&dag_runs_limit=14")
            else:
                print(f"/ui/dags not served here ({ui.status_code}); skipped")
            for path in paths:
                r = await _load(http, path, token, args.concurrency, args.seconds, server.pid)
                print(
                    f"{r['path']:40s} {r['requests']:5d} req {r['rps']:6.1f} req/s"
                    f"  p50 {r['p50_ms']:5.1f} ms  p99 {r['p99_ms']:5.1f} ms"
                    f"  server CPU {r['cpu_ms']:4.2f} ms/req  errors {r['errors']}"
                )
            print(f"load average during the run: {os.getloadavg()}")
    finally:
        server.terminate()
        server.wait(timeout=30)
        await _admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dags", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    sys.exit(asyncio.run(main(parser.parse_args())))
