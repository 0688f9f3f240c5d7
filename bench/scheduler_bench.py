"""Benchmark the scheduler's pure decision core: time per ``decide()`` call.

Run from the repository root:

    python bench/scheduler_bench.py                 # 100 runs x 100 tasks, 50 calls
    python bench/scheduler_bench.py --runs 200 --tasks 50 --calls 100

The snapshot holds ``runs x tasks`` active task instances (default 10,000) of one DAG shaped as
10 layers of 10 tasks, each task reading 2-3 tasks of the layer above, with a mix of trigger
rules; each run is at a different stage (finished layers, a layer in flight with running,
queued, failed, up_for_retry and skipped instances, the rest not started), so every code path
of ``decide`` is exercised. Building the snapshot is not timed. Prints median, p99 and max in
milliseconds (wall clock, and CPU time of the thread, which other processes on a busy machine
disturb less), and the number of actions per call. Target: median under 50 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from leoflow.scheduler.decide import decide
from leoflow.scheduler.model import (
    DagRunSnap,
    DagSnap,
    DecideConfig,
    Snapshot,
    TaskInstanceSnap,
)
from leoflow.scheduler.states import DagRunState, TaskInstanceState
from leoflow.spec import DagSpec, TaskSpec, TriggerRule

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)
TARGET_MS = 50.0
RULES = [TriggerRule.ALL_SUCCESS] * 6 + [
    TriggerRule.ALL_DONE,
    TriggerRule.ONE_SUCCESS,
    TriggerRule.NONE_FAILED,
    TriggerRule.ONE_FAILED,
]
IN_FLIGHT = [
    TaskInstanceState.RUNNING,
    TaskInstanceState.QUEUED,
    TaskInstanceState.SUCCESS,
    TaskInstanceState.FAILED,
    TaskInstanceState.UP_FOR_RETRY,
    TaskInstanceState.SCHEDULED,
    TaskInstanceState.RUNNING,
    TaskInstanceState.SKIPPED,
]


def build_spec(n_tasks: int) -> DagSpec:
    """A layered DAG of ``n_tasks`` tasks (layers of 10)."""
    tasks = []
    for i in range(n_tasks):
        layer, pos = divmod(i, 10)
        ups = [] if layer == 0 else sorted({(layer - 1) * 10 + (pos + k) % 10 for k in (0, 1, 3)})
        tasks.append(
            TaskSpec(
                task_id=f"t{i:04d}",
                type="empty",
                operator="EmptyOperator",
                upstream=[f"t{u:04d}" for u in ups],
                trigger_rule=RULES[i % len(RULES)],
                retries=2,
                execution_timeout_seconds=3600,
                pool="default_pool" if i % 3 else "io",
            )
        )
    return DagSpec(dag_id="bench", tasks=tasks, max_active_tasks=64, max_active_runs=1000)


def build_run(k: int, spec: DagSpec) -> DagRunSnap:
    """Run ``k``: ``k % layers`` layers done, one layer in flight, the rest not started."""
    layers = (len(spec.tasks) + 9) // 10
    done_layers = k % layers
    tis = {}
    for i, t in enumerate(spec.tasks):
        layer = i // 10
        if layer < done_layers:
            state = TaskInstanceState.SUCCESS
        elif layer == done_layers:
            state = IN_FLIGHT[(i + k) % len(IN_FLIGHT)]
        else:
            state = TaskInstanceState.NONE
        started = NOW - timedelta(seconds=30)
        tis[t.task_id] = TaskInstanceSnap(
            task_id=t.task_id,
            state=state,
            try_number=0 if state is TaskInstanceState.NONE else 1,
            max_tries=2,
            next_retry_at=NOW - timedelta(seconds=1) if k % 2 else NOW + timedelta(minutes=5),
            queued_at=started,
            start_date=started,
            last_heartbeat_at=NOW - timedelta(seconds=5),
        )
    run_after = NOW - timedelta(hours=k)
    return DagRunSnap(
        run_id=f"manual__{run_after.isoformat()}",
        state=DagRunState.RUNNING,
        run_after=run_after,
        logical_date=run_after,
        start_date=run_after,
        task_instances=tis,
    )


def build_snapshot(n_runs: int, n_tasks: int) -> Snapshot:
    """One DAG with ``n_runs`` running runs of ``n_tasks`` task instances each."""
    spec = build_spec(n_tasks)
    runs = tuple(build_run(k, spec) for k in range(n_runs))
    return Snapshot(
        now=NOW,
        dags=(DagSnap(spec=spec, runs=runs),),
        pools={"default_pool": 512, "io": 128},
        config=DecideConfig(parallelism=1024),
    )


def main(argv: list[str] | None = None) -> int:
    """Time ``decide()`` and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args(argv)
    snap = build_snapshot(args.runs, args.tasks)
    n_tis = sum(len(r.task_instances) for d in snap.dags for r in d.runs)
    actions = decide(snap)  # warm-up (also compiles the DAG once, as a long-lived loop would)
    timings, cpu = [], []
    for _ in range(args.calls):
        start, start_cpu = time.perf_counter(), time.thread_time()
        decide(snap)
        cpu.append((time.thread_time() - start_cpu) * 1000)
        timings.append((time.perf_counter() - start) * 1000)
    timings.sort()
    cpu.sort()
    p99 = timings[min(len(timings) - 1, round(0.99 * (len(timings) - 1)))]
    median = statistics.median(timings)
    kinds: dict[str, int] = {}
    for a in actions:
        kinds[type(a).__name__] = kinds.get(type(a).__name__, 0) + 1
    print(f"command: python bench/scheduler_bench.py --runs {args.runs} --tasks {args.tasks} "
          f"--calls {args.calls}")  # fmt: skip
    print(f"task instances: {n_tis}  actions per call: {len(actions)}  {kinds}")
    print(f"decide() wall: median {median:.1f} ms  p99 {p99:.1f} ms  max {timings[-1]:.1f} ms")
    cpu_p99 = cpu[min(len(cpu) - 1, round(0.99 * (len(cpu) - 1)))]
    print(f"decide() CPU:  median {statistics.median(cpu):.1f} ms  p99 {cpu_p99:.1f} ms")
    verdict = "OK" if median < TARGET_MS else "SLOW"
    print(f"target median < {TARGET_MS:.0f} ms: {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
