"""A Kubernetes API for pods (kmock) and a kubelet stand-in, for the executor's tests.

No real cluster can run on this machine (no container runtime, no kubelet, no etcd), so the API
server is kmock's HTTP-level emulator on a loopback port, made a little more faithful for pods
(namespace, uid, creationTimestamp and resourceVersion filled in on create; names and label
values checked as the API server does, 422 otherwise; label selectors honoured on list and
watch; scripted faults), and the kubelet is ``Kubelet`` below: it watches
pods through the same HTTP API, starts each pod's command as a real local process with the pod's
environment, reports its phases back through the pod status, and kills it when the pod is
deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import signal
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import aiohttp.web
import kmock

PODS = kmock.resource("v1/pods")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _matches(obj: dict[str, Any] | None, selector: str | None) -> bool:
    """Equality-based label selectors (``a=b,c``) as the API server applies them."""
    if not selector:
        return True
    labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
    for term in selector.split(","):
        name, _, value = term.partition("=")
        if name not in labels or (value and labels[name] != value):
            return False
    return True


@dataclass
class Fault:
    """Answer the next ``times`` matching pod requests with ``status`` instead of serving them.

    ``after_store`` serves the request first (the object is created) and then answers the
    error: a response lost on the way back. ``watch_gone`` answers a watch with a 410 ERROR
    event, as an API server does when the watch's resourceVersion is too old.
    """

    action: kmock.action
    status: int = 500
    times: int = 1
    after_store: bool = False
    watch_gone: bool = False
    hits: int = 0


class PodEmulator(kmock.KubernetesEmulator):
    """kmock's Kubernetes emulator with the few pod semantics the executor relies on."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.faults: list[Fault] = []
        self._versions = itertools.count(1)
        self.resources["v1/pods"] = kmock.ResourceInfo(kind="Pod", namespaced=True)

    def inject(self, fault: Fault) -> Fault:
        """Script a fault (see ``Fault``)."""
        self.faults.append(fault)
        return fault

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        if request.resource != PODS:
            return await super()._handle(request)
        for fault in self.faults:
            if fault.action == request.action and fault.hits < fault.times:
                fault.hits += 1
                return await self._fault(fault, request)
        invalid = self._invalid(request)
        if invalid:
            return aiohttp.web.json_response(
                {
                    "kind": "Status",
                    "status": "Failure",
                    "code": 422,
                    "reason": "Invalid",
                    "message": invalid,
                },
                status=422,
            )
        self._fill(request)
        return await super()._handle(request)

    @staticmethod
    def _invalid(request: kmock.Request) -> str | None:
        """The API server's checks on names and label values, which a schema does not catch."""
        if request.action != kmock.action.CREATE or not isinstance(request.data, dict):
            return None
        meta = request.data.get("metadata") or {}
        name = str(meta.get("name") or "")
        if len(name) > 253 or not DNS_SUBDOMAIN.match(name):
            return f"metadata.name: Invalid value: {name!r}"
        for label, value in (meta.get("labels") or {}).items():
            if len(str(value)) > 63 or not LABEL_VALUE.match(str(value)):
                return f"metadata.labels: Invalid value: {label}={value!r}"
        return None

    async def _fault(self, fault: Fault, request: kmock.Request) -> aiohttp.web.StreamResponse:
        if fault.watch_gone:
            line = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Gone"}}
            return aiohttp.web.Response(body=json.dumps(line).encode() + b"\n")
        if fault.after_store:
            self._fill(request)
            await super()._handle(request)
        body = {
            "apiVersion": "v1",
            "kind": "Status",
            "status": "Failure",
            "code": fault.status,
            "reason": {403: "Forbidden", 429: "TooManyRequests"}.get(fault.status, "InternalError"),
            "message": f'pods is forbidden: User "system:serviceaccount:x:y" cannot {request.action}'
            if fault.status == 403
            else "injected fault",
        }
        return aiohttp.web.json_response(body, status=fault.status)

    def _fill(self, request: kmock.Request) -> None:
        data = request.data if isinstance(request.data, dict) else None
        if data is None:
            return
        meta = data.setdefault("metadata", {})
        if request.action == kmock.action.CREATE:
            meta.setdefault("namespace", request.namespace)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = _stamp()
            data.setdefault("status", {"phase": "Pending"})
        if request.action in (kmock.action.CREATE, kmock.action.UPDATE):
            meta["resourceVersion"] = str(next(self._versions))

    async def _serve_list(self, request: kmock.Request) -> Any:
        result = await super()._serve_list(request)
        selector = request.params.get("labelSelector")
        result["items"] = [o for o in result["items"] if _matches(o, selector)]
        result["metadata"] = {"resourceVersion": str(next(self._versions))}
        return result

    async def _serve_watch(self, request: kmock.Request) -> Any:
        selector = request.params.get("labelSelector")
        async for item in super()._serve_watch(request):
            if isinstance(item, dict) and not _matches(item.get("object"), selector):
                continue
            yield item


# --------------------------------------------------------------------------------------------
# The kubelet stand-in
# --------------------------------------------------------------------------------------------

#: What each test image "contains": the program its container runs.
IMAGES = {
    "test/ok": (
        "import os, sys; print('agent', sys.argv[1:], os.environ['AIRFLOW_CTX_TASK_ID'], "
        "os.environ['LEOFLOW_AGENT_ADDRESS'], os.environ['LEOFLOW_AGENT_TOKEN'])"
    ),
    "test/fail": "import sys; print('failing on purpose'); sys.exit(3)",
    "test/sleep": "import time; print('sleeping', flush=True); time.sleep(3600)",
    # The stand-in reports this one as OOMKilled (exit 137), as a kubelet does after the
    # kernel's OOM killer SIGKILLs the container.
    "test/oom": "import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
}


@dataclass
class _Container:
    proc: asyncio.subprocess.Process | None = None
    task: asyncio.Task[None] | None = None
    deleted: bool = False
    output: str = ""


@dataclass
class Kubelet:
    """Runs each pod of ``namespace`` as a local process and reports its phases via the API."""

    base_url: str
    namespace: str
    containers: dict[str, _Container] = field(default_factory=dict)
    _session: aiohttp.ClientSession | None = None
    _watch: asyncio.Task[None] | None = None
    _ready: asyncio.Event = field(default_factory=asyncio.Event)
    _stopping: bool = False

    async def start(self) -> None:
        """Start following pods; returns once the watch is open."""
        self._session = aiohttp.ClientSession(base_url=self.base_url)
        self._watch = asyncio.create_task(self._follow())
        await asyncio.wait_for(self._ready.wait(), 10)

    async def stop(self) -> None:
        """Stop watching, kill every process and wait for each to be reaped."""
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        for container in self.containers.values():
            self._kill(container, signal.SIGKILL)
        tasks = [c.task for c in self.containers.values() if c.task is not None]
        # Each runner ends once its process is dead; none is cancelled mid-wait, so every
        # subprocess transport is closed before the event loop is.
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
        if self._session is not None:
            await self._session.close()

    def terminate(self, name: str) -> None:
        """SIGTERM the pod's process, as a node shutting down would."""
        self._kill(self.containers[name], signal.SIGTERM)

    def output(self, name: str) -> str:
        """What the pod's process printed (``kubectl logs``)."""
        return self.containers[name].output

    async def _follow(self) -> None:
        assert self._session is not None
        url = f"/api/v1/namespaces/{self.namespace}/pods"
        async with self._session.get(url, params={"watch": "true"}, timeout=None) as resp:
            self._ready.set()
            async for raw in resp.content:
                if not raw.strip():
                    continue
                event = json.loads(raw)
                pod = event["object"]
                name = pod["metadata"]["name"]
                if event["type"] == "ADDED" and name not in self.containers:
                    container = self.containers[name] = _Container()
                    container.task = asyncio.create_task(self._run(pod, container))
                elif event["type"] == "DELETED" and name in self.containers:
                    container = self.containers[name]
                    container.deleted = True
                    self._kill(container, signal.SIGTERM)

    async def _run(self, pod: dict[str, Any], container: _Container) -> None:
        name = pod["metadata"]["name"]
        spec = pod["spec"]["containers"][0]
        image = spec["image"]
        await self._status(name, "Pending", {"waiting": {"reason": "ContainerCreating"}})
        script = IMAGES.get(image)
        if script is None:
            message = f"rpc error: pull access denied for {image}, repository does not exist"
            await self._status(
                name, "Pending", {"waiting": {"reason": "ErrImagePull", "message": message}}
            )
            return
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        env.update({item["name"]: item.get("value", "") for item in spec.get("env", [])})
        container.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            script,
            *spec.get("args", []),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        if self._stopping:
            self._kill(container, signal.SIGKILL)
        await self._status(name, "Running", {"running": {"startedAt": _stamp()}})
        deadline = pod["spec"].get("activeDeadlineSeconds")
        try:
            out, _ = await asyncio.wait_for(container.proc.communicate(), deadline)
        except TimeoutError:
            self._kill(container, signal.SIGKILL)
            await container.proc.wait()
            await self._status(
                name,
                "Failed",
                None,
                reason="DeadlineExceeded",
                message="Pod was active on the node longer than the deadline",
            )
            return
        container.output = out.decode()
        if container.deleted:
            return
        code = container.proc.returncode
        if image == "test/oom":
            terminated = {"exitCode": 137, "reason": "OOMKilled"}
        elif code == 0:
            terminated = {"exitCode": 0, "reason": "Completed"}
        else:
            terminated = {"exitCode": code if code > 0 else 128 - code, "reason": "Error"}
        terminated["finishedAt"] = _stamp()
        phase = "Succeeded" if code == 0 else "Failed"
        await self._status(name, phase, {"terminated": terminated})

    async def _status(
        self, name: str, phase: str, state: dict[str, Any] | None, **extra: str
    ) -> None:
        assert self._session is not None
        status: dict[str, Any] = {"phase": phase, **extra}
        if state is not None:
            status["containerStatuses"] = [{"name": "task", "state": state}]
        url = f"/api/v1/namespaces/{self.namespace}/pods/{name}/status"
        headers = {"Content-Type": "application/merge-patch+json"}
        async with self._session.patch(url, json={"status": status}, headers=headers) as resp:
            await resp.read()  # a 404 means the pod was deleted meanwhile: nothing to report

    @staticmethod
    def _kill(container: _Container, sig: int) -> None:
        if container.proc is not None and container.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(container.proc.pid, sig)
