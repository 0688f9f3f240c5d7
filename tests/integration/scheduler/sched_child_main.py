"""A scheduler in its own process, for crash and failover tests (kill -9 needs a real process).

    python sched_child_main.py DSN REDIS_PREFIX WORKDIR DAGS_JSON NAME [WORKER_MODE]

DAGS_JSON maps a spec's content_hash to its dag file. The process logs to stderr; the line
``leader NAME`` says it took the lead. SIGTERM stops it cleanly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from datetime import timedelta
from pathlib import Path

from leoflow.executors.process import ProcessExecutor
from leoflow.scheduler.model import DecideConfig
from leoflow.scheduler.service import Scheduler
from leoflow.settings import Settings
from leoflow.spec import DagSpec
from leoflow.store import RedisStore, Store
from leoflow.store.testing import REDIS_URL


class _LeaderLine(logging.Handler):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name_ = name

    def emit(self, record: logging.LogRecord) -> None:
        if "is the leader" in record.getMessage():
            print(f"leader {self.name_}", file=sys.stderr, flush=True)


async def main(
    dsn: str, prefix: str, workdir: str, dags_json: str, name: str, mode: str = "prestart"
) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("leoflow.scheduler").addHandler(_LeaderLine(name))
    logging.getLogger("leoflow.scheduler").setLevel(logging.INFO)
    dags = json.loads(Path(dags_json).read_text())
    store = await Store.connect(dsn, settings=Settings(secret_key="k" * 32), max_size=5)
    redis = await RedisStore.connect(REDIS_URL, settings=Settings(), prefix=prefix)

    async def resolve(tenant: str, spec: DagSpec) -> tuple[Path, str]:
        return Path(dags[spec.content_hash]), sys.executable

    root = Path(workdir)
    executor = ProcessExecutor(logs_dir=root / "logs", work_root=root, worker_mode=mode)
    scheduler = Scheduler(
        store,
        redis,
        executor,
        resolve,
        logs_dir=root / "logs",
        config=DecideConfig(heartbeat_timeout=timedelta(seconds=30)),
        campaign_seconds=0.2,
        heartbeat_seconds=0.5,
    )
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, scheduler.stop)
    try:
        await scheduler.run_forever()
    finally:
        await redis.close()
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:7]))
