"""End-to-end scheduling benchmark: the same DAG shapes as ../shared/bench/airflow, on Leoflow.

Runs the real scheduler service with the process executor (every task in a fresh process)
against the machine's Postgres and Redis, and reports, as the Airflow baseline does:

* chain50: median gap from a task's end to its downstream's start (server-side timestamps), and
  trigger -> success (run queued_at -> end_date);
* fan100 (100 parallel tasks + a reduce): trigger -> success, and CPU seconds per task (this
  process and all its children);
* idle CPU of the scheduler with 100 registered DAGs.

    python bench/scheduler_e2e_bench.py [--reps 5] [--idle-seconds 20]
        [--worker-mode prestart|fork|cold] [--python PATH]

``--worker-mode``: how each try's fresh process starts (pre-started single-use workers, the
default; forked from a preloaded zygote; or a plain cold start). ``--python``: the interpreter
of the DAG (default: this one; Lite uses a per-DAG uv venv).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from leoflow.compiler import compile_project
from leoflow.executors.process import ProcessExecutor
from leoflow.scheduler.service import Scheduler
from leoflow.settings import Settings
from leoflow.store import RedisStore, Store
from leoflow.store.api import DagRunState
from leoflow.store.testing import (
    REDIS_URL,
    create_test_database,
    drop_test_database,
    flush_redis_prefix,
    redis_test_prefix,
)

AIRFLOW_DAGS = Path(__file__).resolve().parents[2] / "shared" / "bench" / "airflow" / "dags"


def cpu_seconds(zygotes: list[int] | None = None) -> float:
    """User+system CPU of this process, its reaped children, and the zygotes' trees."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    tick = os.sysconf("SC_CLK_TCK")
    for pid in zygotes or ():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime, stime, cutime, cstime are fields 14-17 of stat (11-14 after the name).
        total += sum(int(f) for f in fields[11:15]) / tick
    return total


async def wait_done(store: Store, dag_id: str, run_id: str) -> None:
    while True:
        run = await store.get_run("default", dag_id, run_id)
        if run.state in (DagRunState.SUCCESS, DagRunState.FAILED):
            if run.state is not DagRunState.SUCCESS:
                raise SystemExit(f"{dag_id}/{run_id} failed")
            return
        # Server-side timestamps are measured; polling slowly keeps this loop out of the way.
        await asyncio.sleep(0.1)


async def main(
    reps: int, idle_seconds: float, worker_mode: str, python: str, warm: dict[str, int]
) -> None:
    dsn = await create_test_database(prefix="leoflow_test_bench")
    tmp = Path(tempfile.mkdtemp(prefix="leoflow-bench-"))
    prefix = redis_test_prefix()
    store = await Store.connect(dsn, settings=Settings(secret_key="k" * 32), max_size=10)
    redis = await RedisStore.connect(REDIS_URL, prefix=prefix)
    dirs: dict[str, Path] = {}
    try:
        for name in ("bench_chain50", "bench_fan100"):
            project = tmp / name
            project.mkdir()
            shutil.copy(AIRFLOW_DAGS / f"{name}.py", project / "dag.py")
            (project / "leoflow.yaml").write_text(f"dag_id: {name}\n")
            spec = compile_project(project).spec
            await store.register_version("default", spec)
            dirs[spec.content_hash] = project

        async def resolve(tenant: str, spec):  # type: ignore[no-untyped-def]
            return dirs[spec.content_hash] / "dag.py", python

        modes = {"prestart": warm, "fork": {"worker_mode": "fork"}, "cold": {"warm_workers": 0}}
        executor = ProcessExecutor(logs_dir=tmp / "logs", work_root=tmp, **modes[worker_mode])
        sched = Scheduler(store, redis, executor, resolve, logs_dir=tmp / "logs")
        loop_task = asyncio.create_task(sched.run_forever())
        while not sched.is_leader:
            await asyncio.sleep(0.01)

        gaps: list[float] = []
        chain_total: list[float] = []
        fan_total: list[float] = []
        fan_cpu: list[float] = []
        for rep in range(reps):
            run_id = f"chain_{rep}"
            await store.create_run("default", "bench_chain50", run_id=run_id)
            sched.wake()
            await wait_done(store, "bench_chain50", run_id)
            run = await store.get_run("default", "bench_chain50", run_id)
            chain_total.append((run.end_date - run.queued_at).total_seconds())
            tis = {
                t.task_id: t
                for t in (await store.list_tis("default", "bench_chain50", run_id, limit=100)).items
            }
            for i in range(1, 50):
                prev, cur = tis[f"t{i - 1:02d}"], tis[f"t{i:02d}"]
                gaps.append((cur.start_date - prev.end_date).total_seconds())

            run_id = f"fan_{rep}"
            # A zygote started during the run counts in full (it was at 0 before).
            cpu0 = cpu_seconds(executor.zygotes.pids())
            await store.create_run("default", "bench_fan100", run_id=run_id)
            sched.wake()
            await wait_done(store, "bench_fan100", run_id)
            fan_cpu.append((cpu_seconds(executor.zygotes.pids()) - cpu0) / 101)
            run = await store.get_run("default", "bench_fan100", run_id)
            fan_total.append((run.end_date - run.queued_at).total_seconds())

        # Idle: 100 more registered DAGs, no runs.
        from leoflow.spec import DagSpec, finalize

        for i in range(100):
            spec = finalize(
                DagSpec.model_validate(
                    {
                        "dag_id": f"idle_{i:03d}",
                        "schedule": {"type": "cron", "expression": "0 0 1 1 *"},
                        "start_date": "2099-01-01T00:00:00+00:00",
                        "tasks": [
                            {
                                "task_id": "t",
                                "type": "bash",
                                "operator": "BashOperator",
                                "bash_command": "true",
                            }
                        ],
                    }
                )
            )
            await store.register_version("default", spec)
        # Past one idle sweep, so the new DAGs' one-time work (next due times) is done.
        await asyncio.sleep(6)
        pids = executor.zygotes.pids()
        cpu0, t0 = cpu_seconds(pids), time.monotonic()
        await asyncio.sleep(idle_seconds)
        idle = (cpu_seconds(pids) - cpu0) / (time.monotonic() - t0)

        sched.stop()
        await loop_task
        med = statistics.median
        print(
            f"chain50 gap end->next start: median {med(gaps) * 1000:.1f} ms, "
            f"p90 {sorted(gaps)[int(len(gaps) * 0.9)] * 1000:.1f} ms over {len(gaps)} edges"
        )
        print(f"chain50 trigger->success: median {med(chain_total):.2f} s")
        print(f"fan100 trigger->success: median {med(fan_total):.2f} s")
        print(f"fan100 CPU seconds per task (all processes): median {med(fan_cpu):.3f}")
        print(f"idle CPU with 102 DAGs: {idle * 100:.2f} % of a core")
        print(
            f"command: python bench/scheduler_e2e_bench.py --reps {reps} "
            f"--idle-seconds {idle_seconds:g} --worker-mode {worker_mode}"
            + "".join(f" --{k.replace('_', '-')} {v}" for k, v in warm.items())
            + ("" if python == sys.executable else f" --python {python}")
        )
    finally:
        await flush_redis_prefix(redis.client, prefix)
        await redis.close()
        await store.close()
        await drop_test_database(dsn)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--worker-mode", choices=["prestart", "fork", "cold"], default="prestart")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--warm-workers", type=int, help="prestart: workers kept per DAG file")
    parser.add_argument("--warm-max", type=int, help="prestart: the most it grows to")
    args = parser.parse_args()
    warm = {
        name: value
        for name, value in (("warm_workers", args.warm_workers), ("warm_max", args.warm_max))
        if value is not None
    }
    asyncio.run(main(args.reps, args.idle_seconds, args.worker_mode, args.python, warm))
