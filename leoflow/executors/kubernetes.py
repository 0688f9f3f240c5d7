"""The Kubernetes executor (Pro): every task try in its own pod, from its DAG's image.

One pod per try, named deterministically from the ``TaskKey`` (``_k8s_pods.pod_name``), so a
create retried after a timeout, or repeated by a restarted control plane, answers ``409`` and
never starts a second pod. The pod runs ``leoflow agent`` (the image's entrypoint is
``leoflow``), which talks to the control plane over gRPC and reports the task's own outcome and
XCom; this executor reports the infrastructure's view of the try (running, succeeded, failed
with the container's reason: OOMKilled, image pull errors, deadline exceeded, eviction).

State comes from one list + watch of the namespace's labelled pods, not from polling each pod.
``start()`` lists first and adopts every pod it finds (a restarted control plane picks up the
pods its predecessor started), so ``submit()`` of an adopted try is a no-op. ``stop()`` leaves
pods running for the same reason. Finished pods are deleted ``gc_after_seconds`` after they end.

``submit()`` returns once the try is recorded; the pod is created in the background, so a slow
or failing API server (retried with backoff) never stalls the scheduler loop. A create that
fails for good becomes a ``failed`` event with the reason (a ``403`` names the missing RBAC
permission).

The image: ``job.context["image"]`` (the DAG's ``runtime.image``, digest-pinned once pushed,
put there by the dispatcher), else the executor's ``default_image``, else the try fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from leoflow.errors import LeoflowError
from leoflow.executors._k8s_api import ApiCallFailed, PodApi, PodWatcher
from leoflow.executors._k8s_pods import (
    Pod,
    PodSettings,
    build_pod,
    finished_at,
    key_from_pod,
    pod_name,
    pod_outcome,
)
from leoflow.executors.base import EventCallback, Executor, TaskEvent, TaskJob, TaskKey

log = logging.getLogger("leoflow.executors.kubernetes")

MetricCallback = Callable[[str, float], None]
_CANCEL_GRACE_SECONDS = 10


def _now() -> datetime:
    return datetime.now(UTC)


def default_api_client() -> k8s.ApiClient:
    """A client from the in-cluster service account, else from ``$KUBECONFIG`` or
    ``~/.kube/config``; the client library's global default configuration is left alone."""
    configuration = k8s.Configuration()
    try:
        k8s_config.load_incluster_config(client_configuration=configuration)
    except k8s_config.ConfigException:
        # The library reads KUBECONFIG once at import; read it now, when the executor starts.
        k8s_config.load_kube_config(
            config_file=os.environ.get("KUBECONFIG"), client_configuration=configuration
        )
    return k8s.ApiClient(configuration)


def image_from_context(job: TaskJob) -> str | None:
    """The default image lookup: ``job.context["image"]``."""
    image = job.context.get("image")
    return str(image) if image else None


def options_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """``KubernetesExecutor`` keyword arguments from the variables the Helm chart sets.

    ``LEOFLOW_K8S_NAMESPACE`` and ``LEOFLOW_AGENT_ADDRESS`` are required;
    ``LEOFLOW_K8S_POD_GC_SECONDS``, ``LEOFLOW_AGENT_TLS_CA_CONFIGMAP``,
    ``LEOFLOW_K8S_IMAGE_PULL_POLICY`` and ``LEOFLOW_K8S_DEFAULT_IMAGE`` are optional.
    """
    options: dict[str, Any] = {}
    for name, option in (
        ("LEOFLOW_K8S_NAMESPACE", "namespace"),
        ("LEOFLOW_AGENT_ADDRESS", "agent_address"),
    ):
        if not env.get(name):
            raise LeoflowError(
                f"{name} is not set",
                field=name,
                hint="the Kubernetes executor needs the task namespace and the address pods "
                "use to reach the control plane's gRPC port (the Helm chart sets both)",
            )
        options[option] = env[name]
    if env.get("LEOFLOW_K8S_POD_GC_SECONDS"):
        options["gc_after_seconds"] = float(env["LEOFLOW_K8S_POD_GC_SECONDS"])
    if env.get("LEOFLOW_AGENT_TLS_CA_CONFIGMAP"):
        options["ca_configmap"] = env["LEOFLOW_AGENT_TLS_CA_CONFIGMAP"]
    if env.get("LEOFLOW_K8S_IMAGE_PULL_POLICY"):
        options["image_pull_policy"] = env["LEOFLOW_K8S_IMAGE_PULL_POLICY"]
    if env.get("LEOFLOW_K8S_DEFAULT_IMAGE"):
        options["default_image"] = env["LEOFLOW_K8S_DEFAULT_IMAGE"]
    return options


@dataclass
class _Try:
    """What the executor knows about one try's pod."""

    key: TaskKey
    name: str
    reported_running: bool = False
    terminal: bool = False
    finished_at: float | None = None
    cancel_reason: str | None = None
    deleting: bool = False
    #: The pod has been seen in the API (created, listed or watched), not just requested.
    seen: bool = False


class KubernetesExecutor(Executor):
    """Runs each try as a pod in ``namespace``; state by watch; adopts pods on start."""

    name = "kubernetes"

    def __init__(
        self,
        *,
        namespace: str,
        agent_address: str,
        api: k8s.ApiClient | None = None,
        image_for: Callable[[TaskJob], str | None] = image_from_context,
        default_image: str | None = None,
        gc_after_seconds: float = 600,
        gc_interval_seconds: float | None = None,
        ca_configmap: str | None = None,
        image_pull_policy: str = "IfNotPresent",
        image_pull_secrets: tuple[str, ...] = (),
        deadline_grace_seconds: int = 60,
        api_concurrency: int = 8,
        api_attempts: int = 6,
        backoff_seconds: float = 0.25,
        backoff_max_seconds: float = 8.0,
        clock: Callable[[], float] = time.time,
        on_metric: MetricCallback | None = None,
    ) -> None:
        """Configure the executor; nothing talks to the cluster before ``start()``.

        ``image_for`` picks a try's image (default: ``job.context["image"]``), falling back to
        ``default_image``. ``gc_after_seconds`` is how long a finished pod stays for
        ``kubectl logs``; ``clock`` (epoch seconds) is injectable for tests. ``api_attempts``
        and ``backoff_*`` bound the retries of one API call; ``api_concurrency`` is how many
        calls run at once. ``on_metric(name, increment)`` hears every counter change, which
        are also kept in ``self.metrics``.
        """
        self.namespace = namespace
        self._settings = PodSettings(
            namespace=namespace,
            agent_address=agent_address,
            image_pull_policy=image_pull_policy,
            ca_configmap=ca_configmap,
            image_pull_secrets=tuple(image_pull_secrets),
            deadline_grace_seconds=deadline_grace_seconds,
        )
        self._api_client = api
        self._api_options = {
            "concurrency": api_concurrency,
            "attempts": api_attempts,
            "backoff_seconds": backoff_seconds,
            "backoff_max_seconds": backoff_max_seconds,
        }
        self._image_for = image_for
        self._default_image = default_image
        self._gc_after = gc_after_seconds
        self._gc_interval = gc_interval_seconds or max(1.0, min(60.0, gc_after_seconds / 4))
        self._clock = clock
        self._on_metric = on_metric
        self.metrics: dict[str, int] = {}
        self._on_event: EventCallback | None = None
        self._tries: dict[TaskKey, _Try] = {}
        self._by_name: dict[str, TaskKey] = {}
        self._pods: PodApi | None = None
        self._watcher: PodWatcher | None = None
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._background: list[asyncio.Task[Any]] = []

    # -- the Executor interface ----------------------------------------------------------

    async def start(self, on_event: EventCallback) -> None:
        """Adopt the namespace's existing pods, then follow every pod through one watch."""
        self._on_event = on_event
        api = self._api_client or await asyncio.to_thread(default_api_client)
        # The client imports its CoreV1Api lazily, building pydantic models for seconds of CPU:
        # keep that off the event loop.
        self._pods = await asyncio.to_thread(
            PodApi, api, self.namespace, on_retry=self._count_retry, **self._api_options
        )
        items, resource_version = await self._pods.list()
        for pod in items:
            if await self._observe("ADDED", pod):
                self._count("pods_adopted")
        loop = asyncio.get_running_loop()

        def deliver(kind: str, obj: Any) -> None:
            loop.call_soon_threadsafe(self._queue.put_nowait, (kind, obj))

        self._watcher = PodWatcher(
            self._pods,
            deliver,
            resource_version=resource_version,
            on_relist=lambda: self._count("watch_relists"),
        )
        self._watcher.start()
        self._background = [
            asyncio.create_task(self._consume(), name="k8s-events"),
            asyncio.create_task(self._gc_loop(), name="k8s-gc"),
        ]

    def running(self) -> set[TaskKey]:
        """Tries whose pod is being created, pending or running (adopted ones included)."""
        return {key for key, t in self._tries.items() if not t.terminal}

    async def submit(self, job: TaskJob) -> None:
        """Record the try and create its pod in the background (no-op when already known)."""
        if self._on_event is None or self._pods is None:
            raise RuntimeError("KubernetesExecutor.start() must be called before submit()")
        if job.key in self._tries:
            return
        self._track(job.key, pod_name(job.key))
        self._spawn(self._create(job))

    async def cancel(self, key: TaskKey, reason: str) -> None:
        """Delete the try's pod (grace 10 s) and report ``failed`` with ``reason``."""
        entry = self._tries.get(key)
        if entry is None or entry.terminal:
            return
        entry.cancel_reason = reason
        await self._delete(entry, _CANCEL_GRACE_SECONDS)
        await self._finish(entry, TaskEvent(key, "failed", _now(), error=reason))

    async def stop(self) -> None:
        """Stop watching and release the client; pods keep running, to be adopted on restart."""
        if self._watcher is not None:
            await asyncio.to_thread(self._watcher.stop)
        for task in [*self._background, *self._tasks]:
            task.cancel()
        await asyncio.gather(*self._background, *self._tasks, return_exceptions=True)
        self._background = []
        if self._pods is not None:
            self._pods.close()

    # -- garbage collection --------------------------------------------------------------

    async def collect_garbage(self, now: float | None = None) -> int:
        """Delete finished pods that ended ``gc_after_seconds`` ago; returns how many."""
        now = self._clock() if now is None else now
        due = [
            t
            for t in self._tries.values()
            if t.terminal and not t.deleting and t.finished_at is not None
            if now - t.finished_at >= self._gc_after
        ]
        for entry in due:
            await self._delete(entry, 0)
            self._count("pods_collected")
        return len(due)

    async def _gc_loop(self) -> None:
        while True:
            await asyncio.sleep(self._gc_interval)
            try:
                await self.collect_garbage()
            except Exception:  # GC retries next round
                log.exception("pod garbage collection failed")

    # -- creating pods -------------------------------------------------------------------

    async def _create(self, job: TaskJob) -> None:
        assert self._pods is not None
        entry = self._tries[job.key]
        image = self._image_for(job) or self._default_image
        if not image:
            await self._fail_create(
                entry,
                "no image for this task: set runtime.image in leoflow.yaml (leoflow compile "
                "--build pins it), or give the executor a default_image",
                retryable=False,
            )
            return
        manifest = build_pod(job, image, self._settings)
        try:
            created = await self._pods.create(manifest)
            self._count("pods_created")
        except ApiCallFailed as exc:
            if exc.status == 409:
                # Created before (a lost response, another replica, or a restart): same try.
                self._count("create_conflicts")
                created = await self._pods.read(entry.name) or {}
            elif exc.status == 403:
                await self._fail_create(
                    entry,
                    f"Kubernetes refused to create pod {entry.name} ({exc.detail}): the control "
                    f"plane's service account needs the RBAC permission 'create' on 'pods' in "
                    f"namespace {self.namespace!r} (a Role plus RoleBinding)",
                    retryable=False,
                )
                return
            else:
                await self._fail_create(
                    entry,
                    f"could not create pod {entry.name} after {exc.attempts} attempt(s): "
                    f"{exc.detail}",
                )
                return
        if entry.cancel_reason is not None:
            # Cancelled while the create was in flight: the pod must not run.
            await self._delete(entry, _CANCEL_GRACE_SECONDS)
            return
        if created:
            await self._observe("ADDED", created)

    async def _fail_create(self, entry: _Try, error: str, *, retryable: bool = True) -> None:
        self._count("create_failures")
        await self._finish(
            entry, TaskEvent(entry.key, "failed", _now(), error=error, retryable=retryable)
        )
        # Nothing exists to watch or collect: forget the try so the key can be submitted again.
        self._untrack(entry)

    # -- following pods ------------------------------------------------------------------

    async def _consume(self) -> None:
        while True:
            kind, obj = await self._queue.get()
            try:
                if kind == "SYNC":
                    await self._sync(obj)
                else:
                    await self._observe(kind, obj)
            except Exception:  # one bad event must not stop the watch
                log.exception("could not handle pod event %s", kind)

    async def _sync(self, pods: list[Pod]) -> None:
        """After a re-list: pods we track that are gone were deleted while we were not looking."""
        seen = {(p.get("metadata") or {}).get("name") for p in pods}
        for name, key in list(self._by_name.items()):
            entry = self._tries.get(key)
            if name not in seen and entry is not None and entry.seen:
                await self._observe("DELETED", {"metadata": {"name": name}})
        for pod in pods:
            await self._observe("ADDED", pod)

    async def _observe(self, kind: str, pod: Pod) -> bool:
        """Apply one pod state; True when the pod was not tracked before."""
        name = (pod.get("metadata") or {}).get("name")
        key = self._by_name.get(name) if name else None
        fresh = False
        if key is None:
            key = key_from_pod(pod)
            if key is None or kind == "DELETED":
                return False
            self._track(key, name)
            fresh = True
        entry = self._tries[key]
        if kind == "DELETED":
            await self._gone(entry)
            return fresh
        entry.seen = True
        if entry.terminal:
            return fresh
        outcome = pod_outcome(pod)
        started = outcome.state in ("running", "success") or (
            outcome.state == "failed" and not outcome.delete
        )
        if started and not entry.reported_running:
            entry.reported_running = True
            await self._emit(TaskEvent(key, "running", _now(), hostname=name))
        if outcome.state == "success":
            self._count("pods_succeeded")
            entry.finished_at = finished_at(pod) or self._clock()
            await self._finish(entry, TaskEvent(key, "success", _now()))
        elif outcome.state == "failed":
            self._count("pods_failed")
            entry.finished_at = finished_at(pod) or self._clock()
            event = TaskEvent(
                key, "failed", _now(), error=outcome.error, retryable=outcome.retryable
            )
            await self._finish(entry, event)
            if outcome.delete:
                await self._delete(entry, 0)
        return fresh

    async def _gone(self, entry: _Try) -> None:
        if not entry.terminal:
            error = entry.cancel_reason or (
                f"pod {entry.name} was deleted before it finished "
                "(evicted, preempted, or deleted by hand)"
            )
            await self._finish(entry, TaskEvent(entry.key, "failed", _now(), error=error))
        self._untrack(entry)

    async def _finish(self, entry: _Try, event: TaskEvent) -> None:
        if entry.terminal:
            return
        entry.terminal = True
        if entry.finished_at is None:
            entry.finished_at = self._clock()
        await self._emit(event)

    async def _delete(self, entry: _Try, grace_seconds: int) -> None:
        assert self._pods is not None
        entry.deleting = True
        try:
            await self._pods.delete(entry.name, grace_seconds)
        except ApiCallFailed as exc:
            entry.deleting = False  # GC tries again later
            log.warning("could not delete pod %s: %s", entry.name, exc.detail)

    # -- bookkeeping ---------------------------------------------------------------------

    def _track(self, key: TaskKey, name: str) -> None:
        self._tries[key] = _Try(key=key, name=name)
        self._by_name[name] = key

    def _untrack(self, entry: _Try) -> None:
        if self._tries.get(entry.key) is entry:
            del self._tries[entry.key]
            self._by_name.pop(entry.name, None)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _emit(self, event: TaskEvent) -> None:
        assert self._on_event is not None
        try:
            await self._on_event(event)
        except Exception:  # the watch must go on for the other tries
            log.exception("event callback failed for %s", event.key)

    def _count(self, name: str, amount: int = 1) -> None:
        self.metrics[name] = self.metrics.get(name, 0) + amount
        if self._on_metric is not None:
            with contextlib.suppress(Exception):
                self._on_metric(name, amount)

    def _count_retry(self, what: str, detail: str) -> None:
        self._count("api_retries")
