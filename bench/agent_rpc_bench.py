"""Benchmark: agent protocol round trips per second on loopback (Heartbeat, GetInputs, GetTask).

The agent service runs in a child process (as in `leoflow server`) on a fresh database and a
private Redis prefix; one task instance is running with two declared upstream outputs in Redis.
This process then calls the service with N concurrent agents (one channel each), every call
authenticated with the try's agent token, and prints calls/s and p50/p99 latency per method.

    python bench/agent_rpc_bench.py [--seconds 5] [--concurrency 1 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

from leoflow.compiler import compile_project
from leoflow.executors.base import TaskKey
from leoflow.rpc import agent_pb2 as pb
from leoflow.rpc import agent_pb2_grpc as pb_grpc
from leoflow.rpc.tokens import AgentTokenIssuer
from leoflow.settings import Settings
from leoflow.store import RedisStore, Store
from leoflow.store.api import TIState
from leoflow.store.testing import (
    REDIS_URL,
    create_test_database,
    drop_test_database,
    flush_redis_prefix,
    redis_test_prefix,
)

SECRET = "bench-agent-secret-" + "b" * 32
DAG = """
from airflow.sdk import DAG, task


@task
def a() -> int:
    return 1


@task
def b() -> list:
    return list(range(100))


@task
def c(x: int, ys: list) -> int:
    return x


with DAG("rpc_bench", schedule=None):
    c(a(), b())
"""


async def _setup(dsn: str, prefix: str, project: Path) -> str:
    """Register the DAG, make task c a running try 1, store its inputs; return its token."""
    settings = Settings(jwt_secret=SECRET)
    store = await Store.connect(dsn, settings=settings)
    redis = await RedisStore.connect(REDIS_URL, settings=settings, prefix=prefix)
    try:
        project.mkdir(parents=True, exist_ok=True)
        (project / "dag.py").write_text(DAG)
        (project / "leoflow.yaml").write_text("dag_id: rpc_bench\n")
        await store.register_version("default", compile_project(project).spec)
        run = await store.create_run("default", "rpc_bench", run_id="r1")
        async with store.transaction() as tx:
            await tx.create_task_instances(run.id)
        ti = await store.get_ti("default", "rpc_bench", "r1", "c")
        for state, before in (
            (TIState.SCHEDULED, None),
            (TIState.QUEUED, TIState.SCHEDULED),
            (TIState.RUNNING, TIState.QUEUED),
        ):
            assert await store.transition_ti(ti.id, state, expected=[before])
        await redis.set_xcom("default", "rpc_bench", "r1", "a", "return_value", 1)
        await redis.set_xcom("default", "rpc_bench", "r1", "b", "return_value", list(range(100)))
        key = TaskKey("rpc_bench", "r1", "c", -1, 1)
        return AgentTokenIssuer(SECRET).mint(key, ti_id=ti.id)
    finally:
        await redis.close()
        await store.close()


async def _serve(dsn: str, prefix: str, port_file: Path, logs: Path) -> None:
    from leoflow.rpc.server import bind_agent_server

    settings = Settings(jwt_secret=SECRET, home=logs)
    store = await Store.connect(dsn, settings=settings, max_size=10)
    redis = await RedisStore.connect(REDIS_URL, settings=settings, prefix=prefix)
    server, port, _servicer = await bind_agent_server(
        store, redis, settings, host="127.0.0.1", port=0
    )
    port_file.write_text(str(port))
    await server.wait_for_termination()


async def _load(
    address: str, token: str, method: str, concurrency: int, seconds: float
) -> tuple[int, list[float]]:
    md = (("authorization", f"Bearer {token}"),)
    requests = {
        "Heartbeat": pb.HeartbeatRequest(),
        "GetInputs": pb.GetInputsRequest(),
        "GetTask": pb.GetTaskRequest(),
    }
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def agent() -> None:
        async with grpc.aio.insecure_channel(address) as channel:
            call = getattr(pb_grpc.AgentStub(channel), method)
            await call(requests[method], metadata=md)  # warm the connection
            while time.perf_counter() < stop:
                started = time.perf_counter()
                await call(requests[method], metadata=md)
                latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(agent() for _ in range(concurrency)))
    return len(latencies), latencies


async def _bench(args: argparse.Namespace) -> None:
    dsn = await create_test_database()
    prefix = redis_test_prefix()
    tmp = Path(tempfile.mkdtemp(prefix="leoflow-rpc-bench-"))
    port_file = tmp / "port"
    server = None
    try:
        token = await _setup(dsn, prefix, tmp / "project")
        server = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve",
                dsn,
                prefix,
                str(port_file),
                str(tmp / "home"),
            ]
        )
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the agent service did not start")
            await asyncio.sleep(0.05)
        address = f"127.0.0.1:{port_file.read_text()}"
        print(f"$ python {' '.join(sys.argv)}   (cpus: {os.cpu_count()})")
        print(f"{'method':<10} {'agents':>6} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
        for method in ("Heartbeat", "GetInputs", "GetTask"):
            for concurrency in args.concurrency:
                count, lat = await _load(address, token, method, concurrency, args.seconds)
                lat.sort()
                p50 = statistics.median(lat) * 1000
                p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
                rate = count / args.seconds
                print(f"{method:<10} {concurrency:>6} {rate:>9.0f} {p50:>8.2f} {p99:>8.2f}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        import redis.asyncio as aioredis

        client = aioredis.from_url(REDIS_URL)
        await flush_redis_prefix(client, prefix)
        await client.aclose()
        await drop_test_database(dsn)


def main() -> None:
    """Parse arguments; run the service (--serve) or the benchmark."""
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        dsn, prefix, port_file, home = sys.argv[2:6]
        asyncio.run(_serve(dsn, prefix, Path(port_file), Path(home)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    asyncio.run(_bench(parser.parse_args()))


if __name__ == "__main__":
    main()
