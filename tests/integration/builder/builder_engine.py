"""Real parts for the builder's docker tests and bench: dockerd, a registry, a local base image.

Nothing here can be pulled from the internet, so the base image is a debootstrapped Debian
(minbase + python3) built once and cached under ``/var/cache/leoflow-test`` keyed by a hash of
the recipe, then imported into the test engine. dockerd runs with ``--iptables=false
--bridge=none`` and its own data root, so builds use the ``host`` network. podman's
Docker-compatible service (``podman system service``, rootful, runc) runs the same way with its
own storage, config files and mount namespace; see :func:`running_podman`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker

CACHE_DIR = Path(os.environ.get("LEOFLOW_TEST_CACHE", "/var/cache/leoflow-test"))
ROOTFS_RECIPE = {
    "suite": "bookworm",
    "variant": "minbase",
    "include": ["python3", "python3-venv", "ca-certificates"],
    "mirror": os.environ.get("LEOFLOW_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian"),
    "cleanup": 2,
}
# bcrypt of "leoflow-test", for the registry that demands credentials.
HTPASSWD = "leoflow:$2b$12$uuVOzMvqHYC/1nkt4.2yqupTAHWHcEB5iTCPLkIxZTW4JVmidy6Fy\n"
READY_TIMEOUT = 60.0


def rootfs_tar() -> Path:
    """The cached tarball of a minimal Debian with python3; debootstraps it on first use."""
    digest = hashlib.sha256(json.dumps(ROOTFS_RECIPE, sort_keys=True).encode()).hexdigest()[:12]
    target = CACHE_DIR / f"rootfs-{digest}.tar"
    if target.exists():
        return target
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run may be debootstrapping the same recipe
        if target.exists():
            return target
        work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=CACHE_DIR))
        try:
            root = work / "root"
            subprocess.run(
                [
                    "debootstrap",
                    f"--variant={ROOTFS_RECIPE['variant']}",
                    "--include=" + ",".join(ROOTFS_RECIPE["include"]),
                    ROOTFS_RECIPE["suite"],
                    str(root),
                    ROOTFS_RECIPE["mirror"],
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for child in (root / junk).glob("*"):
                    if child.is_file():
                        child.unlink()
            partial = work / "rootfs.tar"
            subprocess.run(["tar", "-C", str(root), "-cf", str(partial), "."], check=True)
            partial.rename(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(check: object, proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{what} exited early ({proc.returncode}):\n{log.read_text()[-3000:]}"
            )
        with contextlib.suppress(Exception):
            if check():  # type: ignore[operator]
                return
        time.sleep(0.1)  # readiness polling of a process we started, not a stand-in for sync
    raise RuntimeError(f"{what} not ready after {READY_TIMEOUT}s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Engine:
    """A running dockerd of our own."""

    host: str
    workdir: Path
    proc: subprocess.Popen[bytes]

    def client(self) -> docker.DockerClient:
        """A docker client bound to this engine."""
        return docker.DockerClient(base_url=self.host, timeout=300)


@contextlib.contextmanager
def running_dockerd() -> Iterator[Engine]:
    """Start dockerd (no iptables, no bridge, private data root); stop and wipe it after."""
    # A short path: unix socket paths are limited to 108 bytes.
    workdir = Path(tempfile.mkdtemp(prefix="lfd-", dir="/tmp"))
    sock = workdir / "docker.sock"
    log = workdir / "dockerd.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                "dockerd",
                "--iptables=false",
                "--ip-masq=false",
                "--bridge=none",
                "--data-root",
                str(workdir / "data"),
                "--exec-root",
                str(workdir / "exec"),
                "--pidfile",
                str(workdir / "dockerd.pid"),
                "--host",
                f"unix://{sock}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    engine = Engine(host=f"unix://{sock}", workdir=workdir, proc=proc)
    try:
        _wait(
            lambda: docker.DockerClient(base_url=engine.host, timeout=5).ping(),
            proc,
            "dockerd",
            log,
        )
        yield engine
    finally:
        _stop(proc)
        _unmount_under(workdir)
        shutil.rmtree(workdir, ignore_errors=True)


def _unmount_under(workdir: Path) -> None:
    """Lazily unmount whatever dockerd left mounted below ``workdir`` (netns, overlays)."""
    prefix = str(workdir) + "/"
    with open("/proc/mounts") as mounts:
        points = [line.split()[1] for line in mounts if line.split()[1].startswith(prefix)]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def _podman_confs(workdir: Path) -> dict[str, str]:
    """Write podman's config files under ``workdir``; returns the environment naming them."""
    # Rootful podman asks runc for nofile/nproc limits above what this sandbox lets even root
    # raise ("error setting rlimit type 7: operation not permitted"): ask for what we have.
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    nproc = pid_max if nproc == resource.RLIM_INFINITY else min(nproc, pid_max)
    nofile = 1048576 if nofile == resource.RLIM_INFINITY else nofile
    (workdir / "containers.conf").write_text(
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
        'netns = "host"\n'
        "[network]\n"
        f'network_config_dir = "{workdir / "net"}"\n'
        "[engine]\n"
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
        f'events_logfile_path = "{workdir / "events.log"}"\n'
        f'image_copy_tmp_dir = "{workdir / "tmp"}"\n'
        'runtime = "runc"\n'
        f'tmp_dir = "{workdir / "tmp"}"\n'
        f'volume_path = "{workdir / "root" / "volumes"}"\n'
    )
    (workdir / "storage.conf").write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{workdir / "root"}"\n'
        f'runroot = "{workdir / "run"}"\n'
    )
    # The test registries speak plain HTTP on loopback: dockerd allows that for 127.0.0.0/8 by
    # itself, podman only for registries.conf entries ("127.0.0.1" matches every port).
    (workdir / "registries.conf").write_text(
        '[[registry]]\nlocation = "127.0.0.1"\ninsecure = true\n'
    )
    (workdir / "tmp").mkdir()
    (workdir / "var-tmp").mkdir()
    return {
        "CONTAINERS_CONF": str(workdir / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(workdir / "storage.conf"),
        "CONTAINERS_REGISTRIES_CONF": str(workdir / "registries.conf"),
        "TMPDIR": str(workdir / "tmp"),  # image copies, else /var/tmp
    }


# podman runs in a mount namespace of its own, so it leaves nothing behind outside its temp
# dir: its overlay mounts vanish with it; /run (runc's state of build steps) is a fresh tmpfs;
# /var/tmp (where build steps unpack, whatever TMPDIR says) is a folder of ours; /var/lib is
# read-only, so the blob-info cache it would write to /var/lib/containers/cache (no setting
# moves it) stays in memory.
_PRIVATE_NS = (
    "mount --bind /var/lib /var/lib && mount -o remount,bind,ro /var/lib && "
    'mount --bind "$0" /var/tmp && mount -t tmpfs -o mode=755,size=64m tmpfs /run && exec "$@"'
)


@contextlib.contextmanager
def running_podman() -> Iterator[Engine]:
    """Start ``podman system service`` (rootful, runc, host network, storage in a temp dir);
    stop and wipe it after."""
    workdir = Path(tempfile.mkdtemp(prefix="lfp-", dir="/tmp"))
    sock = workdir / "podman.sock"
    log = workdir / "podman.log"
    env = {**os.environ, **_podman_confs(workdir)}
    namespace = ["unshare", "--mount", "--propagation", "private", "--"]
    service = ["podman", "system", "service", "--time=0", f"unix://{sock}"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*namespace, "sh", "-ec", _PRIVATE_NS, str(workdir / "var-tmp"), *service],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    engine = Engine(host=f"unix://{sock}", workdir=workdir, proc=proc)
    try:
        _wait(
            lambda: docker.DockerClient(base_url=engine.host, timeout=5).ping(),
            proc,
            "podman system service",
            log,
        )
        yield engine
    finally:
        if proc.poll() is None:
            _remove_containers(engine)
        _stop(proc)
        _unmount_under(workdir)
        shutil.rmtree(workdir, ignore_errors=True)


def _remove_containers(engine: Engine) -> None:
    """Remove what a failed test left running: its conmon would outlive the service."""
    with contextlib.suppress(Exception):
        client = engine.client()
        try:
            for container in client.containers.list(all=True):
                container.remove(force=True)
        finally:
            client.close()


@dataclass
class Registry:
    """A running docker-registry of our own."""

    address: str  # host:port
    proc: subprocess.Popen[bytes]
    workdir: Path


@contextlib.contextmanager
def running_registry(*, htpasswd: bool = False) -> Iterator[Registry]:
    """Start Debian's docker-registry on a free loopback port; stop and wipe it after."""
    import httpx

    workdir = Path(tempfile.mkdtemp(prefix="lfr-", dir="/tmp"))
    port = free_port()
    auth = ""
    if htpasswd:
        (workdir / "htpasswd").write_text(HTPASSWD)
        auth = f"auth:\n  htpasswd:\n    realm: leoflow-test\n    path: {workdir / 'htpasswd'}\n"
    config = workdir / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {workdir / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n{auth}"
    )
    log = workdir / "registry.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["docker-registry", "serve", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    reg = Registry(address=f"127.0.0.1:{port}", proc=proc, workdir=workdir)
    try:
        _wait(
            lambda: httpx.get(f"http://{reg.address}/v2/", timeout=2).status_code in (200, 401),
            proc,
            "docker-registry",
            log,
        )
        yield reg
    finally:
        _stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


def import_base_image(client: docker.DockerClient, tag: str) -> str:
    """Import the cached Debian rootfs into the engine as ``tag``; returns the image id."""
    tar = rootfs_tar()
    repo, _, version = tag.rpartition(":")
    out = client.api.import_image_from_file(
        str(tar),
        repository=repo,
        tag=version,
        changes=["ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    )
    # Both engines answer {"status": "<image id>"}; podman (4.3) ignores the tag and names the
    # image <repo>:latest, so tag it ourselves.
    image_id = json.loads(str(out).strip().splitlines()[-1])["status"]
    client.images.get(image_id).tag(repo, version)
    return str(client.images.get(tag).id)


if __name__ == "__main__":
    started = time.monotonic()
    print(rootfs_tar(), f"{time.monotonic() - started:.1f}s")
