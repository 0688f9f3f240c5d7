"""Process plumbing shared by the embedded datastores: who runs them, how they start and stop.

Leoflow starts ``postgres`` and ``redis-server``/``valkey-server`` itself, as direct children in a
session of their own (so a terminal's Ctrl-C reaches Leoflow, which stops them in order). When the
owner runs as root, the servers run as an unprivileged service user (Postgres refuses root, and a
root Redis could write files anywhere); that user is granted traverse-only access, with a POSIX
ACL entry naming it alone, to the directories above the data and the binaries.

A server left behind by a crashed owner is recognised by its working directory (both servers
chdir into their data directory) and its executable name, never by name alone, so a foreign
process is never signalled.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import logging
import os
import pwd
import signal
import socket
import stat
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from leoflow.errors import Unavailable

log = logging.getLogger(__name__)

SERVICE_USER_ENV = "LEOFLOW_LITE_USER"
DEFAULT_SERVICE_USER = "leoflow"
_PR_SET_PDEATHSIG = 1
_ACL_XATTR = "system.posix_acl_access"
# Linux sun_path is 108 bytes including the terminating NUL.
_MAX_SOCKET_PATH = 107


class DatastoreError(Unavailable):
    """An embedded datastore could not be prepared, started or stopped."""


@dataclass(frozen=True)
class RunAs:
    """The identity the servers run under (``uid``/``gid`` of ourselves when not root)."""

    user: str
    uid: int
    gid: int

    @property
    def switches(self) -> bool:
        """True when the servers run as another user than this process."""
        return self.uid != os.geteuid()


def run_as() -> RunAs:
    """Who the servers run as: ourselves, or (as root) the dedicated service user."""
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid)
    name = os.environ.get(SERVICE_USER_ENV) or DEFAULT_SERVICE_USER
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        entry = _create_system_user(name)
    if entry.pw_uid == 0:
        raise DatastoreError(
            f"the Lite service user {name!r} is root; Postgres refuses to run as root",
            field=SERVICE_USER_ENV,
            hint=f"set {SERVICE_USER_ENV} to an unprivileged account",
        )
    return RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid)


def _create_system_user(name: str) -> pwd.struct_passwd:
    cmd = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name]
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        raise DatastoreError(
            f"cannot create the Lite service user {name!r}: {detail.strip()}",
            field=SERVICE_USER_ENV,
            hint=f"create an unprivileged user and name it in {SERVICE_USER_ENV}, "
            "or run Leoflow Lite as a normal user",
        ) from exc
    log.info("created system user %s to run the embedded datastores", name)
    return pwd.getpwnam(name)


def ensure_dir(path: Path, owner: RunAs, mode: int | None = 0o700) -> Path:
    """Create ``path`` owned by ``owner`` with ``mode`` (``None``: leave an existing dir's mode
    alone), and check it is writable; fail with a message naming it."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if owner.switches:
            os.chown(path, owner.uid, owner.gid)
        if mode is not None:
            path.chmod(mode)
        probe = path / f".write-probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise DatastoreError(
            f"Leoflow Lite cannot write to this directory ({exc.strerror or exc})",
            path=str(path),
            hint="choose a writable LEOFLOW_HOME (e.g. export LEOFLOW_HOME=~/.leoflow) "
            "or fix the directory's owner and permissions",
        ) from exc
    return path


def grant_traverse(path: Path, owner: RunAs) -> None:
    """Let ``owner`` reach ``path``: add an ``x`` ACL entry on each ancestor it cannot cross."""
    if not owner.switches:
        return
    for parent in reversed(path.resolve().parents):
        if _can_traverse(parent, owner):
            continue
        try:
            _add_acl_exec(parent, owner.uid)
        except OSError as exc:
            raise DatastoreError(
                f"the service user {owner.user!r} cannot reach {path}: {parent} is private "
                f"and no ACL could be added ({exc.strerror or exc})",
                path=str(parent),
                hint=f"put LEOFLOW_HOME outside {parent}, or run: chmod o+x {parent}",
            ) from exc
        log.info("granted %s traverse access to %s (ACL)", owner.user, parent)


def _can_traverse(directory: Path, owner: RunAs) -> bool:
    st = directory.stat()
    if st.st_uid == owner.uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_mode & stat.S_IXOTH:
        return True
    if st.st_gid == owner.gid and st.st_mode & stat.S_IXGRP:
        return True
    return owner.uid in _acl_exec_users(directory)


def _read_acl(directory: Path) -> list[tuple[int, int, int]]:
    try:
        raw = os.getxattr(directory, _ACL_XATTR)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP):
            return []
        raise
    return [struct.unpack_from("<HHI", raw, 4 + 8 * i) for i in range((len(raw) - 4) // 8)]


def _acl_exec_users(directory: Path) -> set[int]:
    entries = _read_acl(directory)
    mask = next((perm for tag, perm, _ in entries if tag == 0x10), 7)
    return {uid for tag, perm, uid in entries if tag == 0x02 and perm & mask & 1}


def _add_acl_exec(directory: Path, uid: int) -> None:
    """Write a POSIX access ACL granting ``uid`` search (x) on ``directory``, keeping the rest."""
    mode = directory.stat().st_mode
    entries = {(t, i): p for t, p, i in _read_acl(directory)}
    none = 0xFFFFFFFF
    if not entries:  # derive the minimal ACL from the mode bits
        entries = {(0x01, none): (mode >> 6) & 7, (0x04, none): (mode >> 3) & 7}
        entries[(0x20, none)] = mode & 7
    entries[(0x02, uid)] = entries.get((0x02, uid), 0) | 1
    group_bits = [p for (t, _), p in entries.items() if t in (0x02, 0x04, 0x08)]
    mask = entries.get((0x10, none), 0)
    entries[(0x10, none)] = mask | 1 if mask else _or_all(group_bits)
    body = b"".join(struct.pack("<HHI", t, p, i) for (t, i), p in sorted(entries.items()))
    os.setxattr(directory, _ACL_XATTR, struct.pack("<I", 2) + body)


def _or_all(bits: list[int]) -> int:
    out = 0
    for b in bits:
        out |= b
    return out


def socket_dir(preferred: Path, owner: RunAs, name: str) -> Path:
    """``preferred`` when ``preferred/name`` fits in a unix socket path, else a private tmp dir."""
    if len(str(preferred / name).encode()) <= _MAX_SOCKET_PATH:
        return ensure_dir(preferred, owner)
    digest = hashlib.sha256(str(preferred).encode()).hexdigest()[:12]
    return ensure_dir(Path(tempfile.gettempdir()) / f"leoflow-{owner.uid}-{digest}", owner)


def free_port(host: str = "127.0.0.1") -> int:
    """An unused TCP port on ``host`` (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _libc_prctl() -> Callable[..., int] | None:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


def _die_with_owner(sig: int, owner_pid: int) -> Callable[[], None]:
    prctl = _libc_prctl()

    def preexec() -> None:
        # Runs in the child after the uid switch (a credential change would clear the setting).
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, sig)
        if os.getppid() != owner_pid:  # the owner died before the line above
            os._exit(1)

    return preexec


def spawn(
    argv: Sequence[str],
    *,
    owner: RunAs,
    log_path: Path,
    cwd: Path,
    death_signal: int | None,
    stdin: int | None = subprocess.DEVNULL,
) -> subprocess.Popen[bytes]:
    """Start a server as ``owner`` in its own session, output appended to ``log_path``.

    ``death_signal`` is sent to the server by the kernel when its owner dies (Linux); it is only
    armed from the main thread, because the kernel ties it to the creating thread.
    """
    arm = death_signal is not None and threading.current_thread() is threading.main_thread()
    with open(log_path, "ab") as out:
        if owner.switches:
            os.chown(log_path, owner.uid, owner.gid)
        return subprocess.Popen(
            list(argv),
            stdin=stdin,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
            user=owner.uid if owner.switches else None,
            group=owner.gid if owner.switches else None,
            extra_groups=[] if owner.switches else None,
            preexec_fn=_die_with_owner(death_signal, os.getpid()) if arm else None,  # type: ignore[arg-type]
        )


def run_tool(argv: Sequence[str], *, owner: RunAs, input_text: str | None = None) -> str:
    """Run a short helper (initdb, postgres --single) as ``owner``; fail with its output."""
    try:
        done = subprocess.run(
            list(argv),
            input=input_text,
            capture_output=True,
            text=True,
            check=False,
            cwd="/",
            user=owner.uid if owner.switches else None,
            group=owner.gid if owner.switches else None,
            extra_groups=[] if owner.switches else None,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DatastoreError(f"{Path(argv[0]).name} failed: {exc}") from exc
    if done.returncode != 0:
        raise DatastoreError(
            f"{Path(argv[0]).name} failed (exit {done.returncode}): "
            f"{(done.stderr or done.stdout).strip()[-2000:]}"
        )
    return done.stdout


def pid_alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return _signal_zero(pid)
    return state not in ("Z", "X")


def _signal_zero(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_ours(pid: int, names: Sequence[str], workdir: Path) -> bool:
    """True when ``pid`` runs one of ``names`` with ``workdir`` as its working directory."""
    try:
        exe = Path(os.readlink(f"/proc/{pid}/exe")).name
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return False
    exe = exe.removesuffix(" (deleted)")
    return exe in names and cwd == workdir.resolve() and pid_alive(pid)


def pids_of(names: Sequence[str], workdir: Path) -> list[int]:
    """Every live process running one of ``names`` in ``workdir`` (a crashed run's leftovers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and is_ours(int(entry.name), names, workdir):
            found.append(int(entry.name))
    return sorted(found)


def wait_gone(pids: Sequence[int], timeout: float) -> list[int]:
    """Wait until none of ``pids`` is alive; return those still alive at ``timeout``."""
    deadline = time.monotonic() + timeout
    alive = [p for p in pids if pid_alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.02)
        alive = [p for p in alive if pid_alive(p)]
    return alive


def terminate(
    pids: Sequence[int], first: int, *, timeout: float, popen: subprocess.Popen[bytes] | None = None
) -> None:
    """Send ``first``; escalate to SIGKILL after ``timeout``; reap ``popen`` if it is our child."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, first)
    if popen is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout)
    left = wait_gone(pids, timeout)
    for pid in left:
        log.warning("pid %d ignored signal %d; killing it", pid, first)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if popen is not None:
        popen.wait()
    wait_gone(left, 5.0)


def wait_until(
    ready: Callable[[], bool],
    proc: subprocess.Popen[bytes],
    timeout: float,
    what: str,
    log_path: Path,
) -> None:
    """Poll ``ready`` until true; fail early with the log's tail if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while not ready():
        if proc.poll() is not None:
            raise DatastoreError(
                f"{what} exited with code {proc.returncode} during start-up: {tail(log_path)}",
                path=str(log_path),
            )
        if time.monotonic() > deadline:
            terminate([proc.pid], signal.SIGKILL, timeout=5.0, popen=proc)
            raise DatastoreError(
                f"{what} was not ready after {timeout:.0f}s: {tail(log_path)}", path=str(log_path)
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a log file (for error messages)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"
