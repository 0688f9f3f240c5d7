"""Fork-server workers (opt-in): one preloaded zygote per DAG file forks a child per try.

A pre-started worker hides the interpreter start from the critical path but still pays it
(about 60-90 ms of CPU per try on a small machine). A zygote pays it once: it imports the SDK
and dag.py, then forks; a fork costs a few milliseconds, and the child is still a new process
that runs exactly one try in its own session, working directory and environment, then exits.

The difference an author can see: dag.py's top-level code runs once per zygote (per DAG file
version), not once per try, and whatever it opened at import time (sockets, threads) is shared
by fork with every try. That is why ``worker_mode="fork"`` is opt-in.

The executor talks to a zygote over a SOCK_SEQPACKET socket (see ``runner.zygote_main``); the
child's stdout and stderr are pipes the executor creates and passes with SCM_RIGHTS, so log
capture is unchanged. The zygote reaps its children; the executor learns of a child's exit
through a pidfd. A zygote whose dag file changed is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path

from leoflow.executors.warm import FileStamp, PoolKey, file_stamp

log = logging.getLogger("leoflow.executors.forkserver")


class ForkedProcess:
    """The parts of ``asyncio.subprocess.Process`` the executor uses, for a zygote's child."""

    def __init__(self, pid: int, stdout_fd: int, stderr_fd: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[int] = loop.create_future()
        self.stdout = asyncio.StreamReader()
        self.stderr = asyncio.StreamReader()
        self._pipes = [(stdout_fd, self.stdout), (stderr_fd, self.stderr)]
        try:
            self._pidfd: int | None = os.pidfd_open(pid)
        except ProcessLookupError:  # already gone (and reaped by the zygote)
            self._pidfd = None
            self._set_exited()
        else:
            loop.add_reader(self._pidfd, self._on_exit)

    async def connect(self) -> None:
        """Start reading the child's output pipes."""
        loop = asyncio.get_running_loop()
        for fd, reader in self._pipes:
            pipe = os.fdopen(fd, "rb", buffering=0)
            await loop.connect_read_pipe(lambda r=reader: asyncio.StreamReaderProtocol(r), pipe)

    def _on_exit(self) -> None:
        assert self._pidfd is not None
        asyncio.get_running_loop().remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = None
        self._set_exited()

    def _set_exited(self) -> None:
        # The zygote reaps it: the exit status is not ours to read; the result file says how
        # the try ended.
        self.returncode = -1
        if not self._exited.done():
            self._exited.set_result(-1)

    async def wait(self) -> int:
        """Until the child has exited."""
        return await asyncio.shield(self._exited)


@dataclass
class Zygote:
    """One fork server for one (python, dag file)."""

    proc: asyncio.subprocess.Process
    control: socket.socket
    workdir: Path
    stamp: FileStamp
    ready: bool = False
    ready_fd: int | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # ready, or failed to be

    async def fork(self, job_file: Path, env: dict[str, str], cwd: Path) -> ForkedProcess:
        """Ask for a child running ``job_file``; its output pipes are ours."""
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        loop = asyncio.get_running_loop()
        request = json.dumps({"job_file": str(job_file), "env": env, "cwd": str(cwd)}).encode()
        try:
            async with self.lock:
                socket.send_fds(self.control, [request], [out_w, err_w])
                reply = await loop.sock_recv(self.control, 4096)
        except BaseException:
            for fd in (out_r, err_r):
                os.close(fd)
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
        if not reply:
            for fd in (out_r, err_r):
                os.close(fd)
            raise ConnectionResetError("the zygote exited")
        child = ForkedProcess(json.loads(reply)["pid"], out_r, err_r)
        await child.connect()
        return child


async def _reap_zygote(zygote: Zygote) -> None:
    with contextlib.suppress(Exception):
        await zygote.proc.wait()
    shutil.rmtree(zygote.workdir, ignore_errors=True)


class ZygotePool:
    """At most one zygote per key, started on first use, replaced when its file changes."""

    def __init__(self, *, env: dict[str, str], work_root: Path | None, idle_seconds: float):
        self._env = env
        self._work_root = work_root
        self._idle_seconds = idle_seconds
        self._zygotes: dict[PoolKey, Zygote] = {}
        self._starting: dict[PoolKey, asyncio.Task[None]] = {}
        self._expiry: dict[PoolKey, asyncio.TimerHandle] = {}
        self._kills: set[asyncio.Future[None]] = set()
        self._closed = False

    def get(self, python: str, dag_file: str) -> Zygote | None:
        """The key's ready zygote (None: start cold this time; one is being prepared)."""
        if self._closed:
            return None
        key = (python, dag_file)
        self._touch(key)
        zygote = self._zygotes.get(key)
        stamp = file_stamp(dag_file)
        if zygote is not None and (
            zygote.proc.returncode is not None or zygote.stamp != stamp or stamp is None
        ):
            self._drop(key)
            zygote = None
        if zygote is None and key not in self._starting:
            self._starting[key] = asyncio.ensure_future(self._start(key))
        return zygote if zygote is not None and zygote.ready else None

    async def wait_ready(self, python: str, dag_file: str, timeout: float) -> Zygote | None:
        """The key's zygote, starting it and waiting up to ``timeout`` s for it to be ready.

        Forking from a zygote that is almost ready beats starting a burst of tries cold: a
        100-way fan-out would otherwise pay 100 interpreter starts.
        """
        zygote = self.get(python, dag_file)
        if zygote is not None or timeout <= 0 or self._closed:
            return zygote
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        key = (python, dag_file)
        starting = self._starting.get(key)
        if starting is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(starting), timeout)
        zygote = self._zygotes.get(key)
        if zygote is None:
            return None
        remaining = deadline - loop.time()
        if not zygote.settled.is_set() and remaining > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(zygote.settled.wait(), remaining)
        return zygote if zygote.ready and zygote.proc.returncode is None else None

    def ready(self, python: str, dag_file: str) -> Zygote | None:
        """The key's zygote if it is up and ready (no side effects)."""
        zygote = self._zygotes.get((python, dag_file))
        return zygote if zygote is not None and zygote.ready else None

    def pids(self) -> list[int]:
        """Pids of the live zygotes (a zygote's reaped children count in its CPU times)."""
        return [z.proc.pid for z in self._zygotes.values() if z.proc.returncode is None]

    def discard(self, python: str, dag_file: str) -> None:
        """Forget a zygote that failed to fork."""
        self._drop((python, dag_file))

    async def stop(self) -> None:
        """Retire every zygote and wait for them (stop their tries first: they wait for them)."""
        self._closed = True
        for task in list(self._starting.values()):
            with contextlib.suppress(Exception):
                await task
        for key in list(self._zygotes):
            self._drop(key)
        for handle in self._expiry.values():
            handle.cancel()
        while self._kills:
            await asyncio.gather(*list(self._kills), return_exceptions=True)

    def _touch(self, key: PoolKey) -> None:
        handle = self._expiry.pop(key, None)
        if handle is not None:
            handle.cancel()
        loop = asyncio.get_running_loop()
        self._expiry[key] = loop.call_later(self._idle_seconds, self._drop, key)

    def _drop(self, key: PoolKey) -> None:
        """Retire a zygote: closing its socket makes it exit once its children have (their
        tries are running and die with it, so it must not be killed under them)."""
        zygote = self._zygotes.pop(key, None)
        if zygote is None:
            return
        self._forget_ready_fd(zygote)
        zygote.settled.set()
        with contextlib.suppress(OSError):
            zygote.control.close()
        task = asyncio.ensure_future(_reap_zygote(zygote))
        self._kills.add(task)
        task.add_done_callback(self._kills.discard)

    def _forget_ready_fd(self, zygote: Zygote) -> None:
        if zygote.ready_fd is not None:
            asyncio.get_running_loop().remove_reader(zygote.ready_fd)
            with contextlib.suppress(OSError):
                os.close(zygote.ready_fd)
            zygote.ready_fd = None

    def _on_ready(self, zygote: Zygote) -> None:
        assert zygote.ready_fd is not None
        try:
            zygote.ready = os.read(zygote.ready_fd, 1) == b"R"
        except OSError:
            zygote.ready = False
        self._forget_ready_fd(zygote)
        zygote.settled.set()

    async def _start(self, key: PoolKey) -> None:
        import tempfile

        python, dag_file = key
        workdir = Path(tempfile.mkdtemp(prefix="leoflow-zygote-", dir=self._work_root))
        stamp = file_stamp(dag_file)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        read_end, write_end = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                python,
                "-m",
                "leoflow.runtime.runner",
                "--zygote",
                dag_file,
                "--ready-fd",
                str(write_end),
                "--control-fd",
                str(theirs.fileno()),
                cwd=workdir,
                env=self._env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True,
                pass_fds=(write_end, theirs.fileno()),
            )
        except OSError as exc:
            ours.close()
            os.close(read_end)
            log.warning("could not start a zygote for %s with %s: %s", dag_file, python, exc)
            return
        finally:
            theirs.close()
            os.close(write_end)
            self._starting.pop(key, None)
        ours.setblocking(False)
        zygote = Zygote(proc, ours, workdir, stamp, ready_fd=read_end)
        asyncio.get_running_loop().add_reader(read_end, self._on_ready, zygote)
        self._zygotes[key] = zygote
        if self._closed:
            self._drop(key)
