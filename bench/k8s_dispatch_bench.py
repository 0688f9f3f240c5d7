"""Benchmark the Kubernetes executor's dispatch rate: pods created per second.

Run from the repository root:

    python bench/k8s_dispatch_bench.py                      # 500 pods, api_concurrency 8
    python bench/k8s_dispatch_bench.py --pods 1000 --concurrency 4 8 16

No real cluster can run on this machine, so the API server is kmock's Kubernetes emulator,
served over loopback HTTP from a child process (so the emulator does not share the executor's
event loop or GIL), told to forget served requests (kmock keeps them all for assertions and
matches each new request against that history, which makes it quadratic). Each round starts a fresh emulator and a fresh ``KubernetesExecutor``,
calls ``submit()`` for N one-task jobs back to back (as the scheduler's dispatch does), and
times from the first ``submit()`` until the executor has a created pod for every job; the count
is then checked through the API. No kubelet runs: this measures the control plane's side (pod
manifest, HTTP create through the official client, the watch following along), not pod start-up.
Prints pods per second, and how long the N ``submit()`` calls themselves took.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubernetes import client as k8s

from leoflow.executors.base import TaskEvent, TaskJob, TaskKey
from leoflow.executors.kubernetes import KubernetesExecutor
from leoflow.spec import TaskSpec

NAMESPACE = "leoflow-bench"


def serve(port: int) -> None:
    """Child process: kmock's Kubernetes emulator on 127.0.0.1:port until killed."""
    import kmock

    class Emulator(kmock.KubernetesEmulator):
        """Forgets served requests: kmock matches each request against its whole request
        history, which makes it quadratic (and the bottleneck) at hundreds of pods."""

        async def _handle(self, request: kmock.Request) -> Any:
            self._requests[:] = [request]
            return await super()._handle(request)

    async def main() -> None:
        async with Emulator() as emu, kmock.Server(emu, port=port):
            emu.resources["v1/pods"] = kmock.ResourceInfo(kind="Pod", namespaced=True)
            print("ready", flush=True)
            await asyncio.Event().wait()

    asyncio.run(main())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _jobs(n: int) -> list[TaskJob]:
    spec = TaskSpec(task_id="t", type="bash", operator="BashOperator", bash_command="true")
    return [
        TaskJob(
            key=TaskKey("bench_dag", "manual__bench", f"task_{i}", -1, 1),
            task=spec.model_copy(update={"task_id": f"task_{i}"}),
            dag_file=Path("/opt/dag/dag.py"),
            python="python",
            context={"image": "registry.example/bench:1"},
            env={"LEOFLOW_AGENT_TOKEN": f"token-{i}"},
        )
        for i in range(n)
    ]


def _count_pods(url: str) -> int:
    with urllib.request.urlopen(f"{url}/api/v1/namespaces/{NAMESPACE}/pods") as resp:
        return len(json.load(resp)["items"])


async def one_round(url: str, n: int, concurrency: int) -> tuple[float, float]:
    """(pods per second, seconds spent inside the N submit() calls)."""
    config = k8s.Configuration()
    config.host = url
    config.connection_pool_maxsize = concurrency * 2
    api = k8s.ApiClient(config)
    executor = KubernetesExecutor(
        namespace=NAMESPACE, agent_address="cp:50051", api=api, api_concurrency=concurrency
    )

    async def on_event(event: TaskEvent) -> None:
        return None

    await executor.start(on_event)
    jobs = _jobs(n)
    start = time.perf_counter()
    for job in jobs:
        await executor.submit(job)
    submitted = time.perf_counter() - start
    while executor.metrics.get("pods_created", 0) + executor.metrics.get("create_failures", 0) < n:
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - start
    failures = executor.metrics.get("create_failures", 0)
    await executor.stop()
    api.close()
    pods = await asyncio.to_thread(_count_pods, url)
    if failures or pods != n:
        raise SystemExit(f"expected {n} pods, the API holds {pods} ({failures} create failures)")
    return n / elapsed, submitted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=500)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8])
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    print(
        f"$ python bench/k8s_dispatch_bench.py --pods {args.pods} --concurrency "
        + " ".join(map(str, args.concurrency))
    )
    for concurrency in args.concurrency:
        port = _free_port()
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(port)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
            rate, submitted = asyncio.run(
                one_round(f"http://127.0.0.1:{port}", args.pods, concurrency)
            )
        finally:
            child.terminate()
            child.wait()
        print(
            f"api_concurrency={concurrency:>3}: {rate:7.1f} pods created/s "
            f"({args.pods} pods; the {args.pods} submit() calls took {submitted * 1000:.1f} ms)"
        )


if __name__ == "__main__":
    main()
