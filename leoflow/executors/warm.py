"""Pre-started, single-use workers for the process executor.

Starting a task's process costs an interpreter start, the SDK import and the dag.py import
(about 100 ms on a small machine), all of it on the critical path between a task's end and its
downstream's start. The pool keeps, per ``(python, dag_file)``, a few processes that have
already paid that (``python -m leoflow.runtime.runner --warm DAG_FILE``) and are blocked on
stdin. Each says it is ready by writing one byte to a pipe (``--ready-fd``). ``take`` hands
out the oldest ready one (else the oldest still importing, which is still ahead of a cold
start) and at once starts its replacement; the executor then writes ONE hand-off line and the
process runs that try and exits. A process never runs a second try, so "a fresh process per
try" still holds.

The pool can adapt to demand: a ``take`` that finds no ready worker raises that key's target by
one, up to ``max_size`` (a chain of short tasks needs as many workers in flight as fit in one
interpreter start-up); the target falls back to ``size`` when the key goes idle. By default
``max_size == size``: on two cores, several interpreters starting at once slowed the control
plane's own queries several-fold (even at the lowest priority), which cost more than it saved.

Pre-starting runs at the lowest CPU priority (process nice and, because each worker leads its
own session, its autogroup), restored at hand-off; only where the executor is allowed to
restore it (root, or RLIMIT_NICE), so a try never runs deprioritised.

A worker is discarded (its process group killed) when its dag file changed since it was
started (inode, size or mtime differ), when the key has not been used for ``idle_seconds``,
when the pool holds too many keys, and on ``stop``. Nothing leaks: ``stop`` waits for spawns
in flight and kills what they produced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("leoflow.executors.warm")


def can_restore_priority() -> bool:
    """Whether this process may give a worker back normal priority after lowering it."""
    if os.geteuid() == 0:
        return True
    try:
        import resource

        return resource.getrlimit(resource.RLIMIT_NICE)[0] >= 20
    except (ImportError, OSError, ValueError, AttributeError):
        return False


def restore_priority(pid: int) -> None:
    """Normal CPU priority (process and autogroup) for a worker handed a try."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, pid, 0)
    with contextlib.suppress(OSError), open(f"/proc/{pid}/autogroup", "w") as group:
        group.write("0")


LOW_PRIORITY = can_restore_priority()
"""Pre-start at the lowest priority only where the executor can restore it at hand-off."""
_NICE_BIN = shutil.which("nice") if LOW_PRIORITY else None
_NICE = (_NICE_BIN, "-n", "19") if _NICE_BIN else ()

PoolKey = tuple[str, str]
"""(interpreter, absolute dag file)."""

FileStamp = tuple[int, int, int] | None


def file_stamp(path: str) -> FileStamp:
    """(inode, size, mtime in ns) of ``path``; None when it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass
class WarmWorker:
    """One pre-started process waiting for its single hand-off."""

    proc: asyncio.subprocess.Process
    workdir: Path
    key: PoolKey
    stamp: FileStamp
    started: float = field(default_factory=time.monotonic)
    ready: bool = False
    ready_fd: int | None = None

    @property
    def alive(self) -> bool:
        """Whether the process has not exited (as far as the event loop knows)."""
        return self.proc.returncode is None


@dataclass
class _Slot:
    target: int
    workers: list[WarmWorker] = field(default_factory=list)
    expiry: asyncio.TimerHandle | None = None


class WarmPool:
    """Keeps ``size`` pre-started workers per key; see the module docstring."""

    def __init__(
        self,
        *,
        env: dict[str, str],
        size: int = 2,
        max_size: int = 2,
        work_root: Path | None = None,
        idle_seconds: float = 600.0,
        max_keys: int = 32,
    ) -> None:
        self._env = env
        self.size = size
        self.max_size = max(size, max_size)
        self._work_root = work_root
        self._idle_seconds = idle_seconds
        self._max_keys = max_keys
        self._slots: OrderedDict[PoolKey, _Slot] = OrderedDict()
        self._spawning: dict[PoolKey, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def workers(self, key: PoolKey | None = None) -> list[WarmWorker]:
        """The idle pre-started workers (of one key, or all)."""
        if key is not None:
            slot = self._slots.get(key)
            return list(slot.workers) if slot else []
        return [w for slot in self._slots.values() for w in slot.workers]

    async def take(self, python: str, dag_file: str) -> WarmWorker | None:
        """A live worker for this key whose dag file is unchanged (None: start cold).

        The caller then calls ``refill`` once its try has started: spawning blocks the event
        loop for a few milliseconds, which must not delay the hand-off.
        """
        if self.size <= 0 or self._closed:
            return None
        key = (python, dag_file)
        slot = self._touch(key)
        stamp = file_stamp(dag_file)
        for worker in list(slot.workers):
            if not worker.alive or worker.stamp != stamp or stamp is None:
                # A changed file invalidates every sibling: they imported the old content.
                slot.workers.remove(worker)
                self._discard(worker)
        ready = [w for w in slot.workers if w.ready]
        chosen = ready[0] if ready else (slot.workers[0] if slot.workers else None)
        if chosen is not None:
            slot.workers.remove(chosen)
            self._forget_ready_fd(chosen)
        if not ready:
            slot.target = min(slot.target + 1, self.max_size)
        return chosen

    def refill(self, python: str, dag_file: str) -> None:
        """Start workers in the background until the key has ``size`` (spawns included)."""
        if self.size <= 0 or self._closed:
            return
        key = (python, dag_file)
        slot = self._touch(key)
        missing = slot.target - len(slot.workers) - self._spawning.get(key, 0)
        for _ in range(max(0, missing)):
            self._spawning[key] = self._spawning.get(key, 0) + 1
            self._track(self._spawn(key))

    async def stop(self) -> None:
        """Kill every pre-started worker, including those still being spawned."""
        self._closed = True
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        for key in list(self._slots):
            self._drop_key(key)
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- internals -----------------------------------------------------------------------

    def _touch(self, key: PoolKey) -> _Slot:
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot(target=self.size)
            while len(self._slots) > self._max_keys:
                self._drop_key(next(iter(self._slots)))
        else:
            self._slots.move_to_end(key)
        if slot.expiry is not None:
            slot.expiry.cancel()
        loop = asyncio.get_running_loop()
        slot.expiry = loop.call_later(self._idle_seconds, self._drop_key, key)
        return slot

    def _drop_key(self, key: PoolKey) -> None:
        slot = self._slots.pop(key, None)
        if slot is None:
            return
        if slot.expiry is not None:
            slot.expiry.cancel()
        for worker in slot.workers:
            self._discard(worker)

    def _track(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _discard(self, worker: WarmWorker) -> None:
        self._forget_ready_fd(worker)
        self._track(kill_worker(worker.proc, worker.workdir))

    def _forget_ready_fd(self, worker: WarmWorker) -> None:
        if worker.ready_fd is not None:
            asyncio.get_running_loop().remove_reader(worker.ready_fd)
            with contextlib.suppress(OSError):
                os.close(worker.ready_fd)
            worker.ready_fd = None

    def _on_ready(self, worker: WarmWorker) -> None:
        assert worker.ready_fd is not None
        try:
            worker.ready = os.read(worker.ready_fd, 1) == b"R"
        except OSError:
            worker.ready = False
        self._forget_ready_fd(worker)

    async def _spawn(self, key: PoolKey) -> None:
        python, dag_file = key
        workdir = Path(tempfile.mkdtemp(prefix="leoflow-warm-", dir=self._work_root))
        stamp = file_stamp(dag_file)
        read_end, write_end = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                *_NICE,
                python,
                "-m",
                "leoflow.runtime.runner",
                "--warm",
                dag_file,
                "--ready-fd",
                str(write_end),
                *(("--low-priority",) if LOW_PRIORITY else ()),
                cwd=workdir,
                env=self._env,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                pass_fds=(write_end,),
            )
        except OSError as exc:
            os.close(read_end)
            shutil.rmtree(workdir, ignore_errors=True)
            log.warning("could not pre-start a worker for %s with %s: %s", dag_file, python, exc)
            return
        finally:
            os.close(write_end)
            self._spawning[key] = self._spawning.get(key, 1) - 1
        worker = WarmWorker(proc, workdir, key, stamp, ready_fd=read_end)
        asyncio.get_running_loop().add_reader(read_end, self._on_ready, worker)
        slot = self._slots.get(key)
        if self._closed or slot is None:
            self._forget_ready_fd(worker)
            await kill_worker(proc, workdir)
            return
        slot.workers.append(worker)


async def kill_worker(proc: asyncio.subprocess.Process, workdir: Path | None = None) -> None:
    """SIGKILL a worker's process group, reap it and remove its working directory."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        await proc.wait()
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)
