"""Pure pod logic for the Kubernetes executor: names, labels, the manifest, and reading outcomes.

Nothing here talks to a cluster. A pod is a plain ``dict`` shaped as the Kubernetes API sends
and receives it (``metadata``/``spec``/``status``), so the executor can skip the client's slow
model (de)serialisation and the tests can assert on exactly what went over the wire.

Identity: a pod's name is a pure function of its ``TaskKey`` (dag_id, run_id, task_id,
map_index, try_number). Creating the same try twice therefore hits ``409 AlreadyExists`` instead
of starting a second pod, whichever replica or restart of the control plane retries it.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from leoflow.executors.base import TaskJob, TaskKey

Pod = dict[str, Any]

LABEL_PREFIX = "leoflow.io/"
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "leoflow"
#: Every pod this executor creates carries it; lists and watches select on it.
POD_SELECTOR = f"{MANAGED_BY}={MANAGED_BY_VALUE}"
CONTAINER_NAME = "task"
CA_MOUNT_DIR = "/etc/leoflow/tls"

#: A waiting container in one of these never starts: the try failed before the task did.
START_FAILURES = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)
#: These do not heal on a retry of the same spec, so the try is not worth retrying.
_NOT_RETRYABLE = frozenset({"InvalidImageName", "ErrImageNeverPull"})

_NAME_BAD = re.compile(r"[^a-z0-9-]+")
_LABEL_BAD = re.compile(r"[^A-Za-z0-9_.-]+")
_LABEL_MAX = 63


def _key_digest(key: TaskKey) -> str:
    raw = "\x1f".join(
        (key.dag_id, key.run_id, key.task_id, str(key.map_index), str(key.try_number))
    )
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:12]


def pod_name(key: TaskKey) -> str:
    """The deterministic pod name of a try: readable parts plus a hash of the whole key.

    Valid DNS-1123 label (lower-case alphanumerics and '-', at most 63 characters), so it is
    also a valid hostname.
    """
    parts = [key.dag_id, key.task_id]
    if key.map_index >= 0:
        parts.append(str(key.map_index))
    parts.append(f"t{key.try_number}")
    readable = _NAME_BAD.sub("-", "-".join(parts).lower())
    readable = re.sub(r"-{2,}", "-", readable)[: 63 - len("lf--") - 12].strip("-")
    return f"lf-{readable}-{_key_digest(key)}" if readable else f"lf-{_key_digest(key)}"


def label_value(raw: str) -> str:
    """``raw`` squeezed into a label value (63 chars, ``[A-Za-z0-9_.-]``, alnum at both ends)."""
    value = _LABEL_BAD.sub("_", raw)[:_LABEL_MAX]
    return value.strip("_.-")


def pod_labels(key: TaskKey, tenant: str) -> dict[str, str]:
    """Selectable labels; values are sanitised, the raw ones live in the annotations.

    ``map-index`` is only set for mapped tasks: ``-1`` is not a valid label value (it must
    start with an alphanumeric), and the API server would refuse the whole pod.
    """
    labels = {
        MANAGED_BY: MANAGED_BY_VALUE,
        f"{LABEL_PREFIX}dag-id": label_value(key.dag_id),
        f"{LABEL_PREFIX}run-id": label_value(key.run_id),
        f"{LABEL_PREFIX}task-id": label_value(key.task_id),
        f"{LABEL_PREFIX}try-number": str(key.try_number),
        f"{LABEL_PREFIX}tenant": label_value(tenant),
    }
    if key.map_index >= 0:
        labels[f"{LABEL_PREFIX}map-index"] = str(key.map_index)
    return labels


def pod_annotations(key: TaskKey, tenant: str) -> dict[str, str]:
    """The exact identity of the try, read back when a pod is adopted."""
    return {
        f"{LABEL_PREFIX}dag-id": key.dag_id,
        f"{LABEL_PREFIX}run-id": key.run_id,
        f"{LABEL_PREFIX}task-id": key.task_id,
        f"{LABEL_PREFIX}map-index": str(key.map_index),
        f"{LABEL_PREFIX}try-number": str(key.try_number),
        f"{LABEL_PREFIX}tenant": tenant,
    }


def key_from_pod(pod: Pod) -> TaskKey | None:
    """The ``TaskKey`` a pod runs, from its annotations; None for a pod that is not ours."""
    meta = pod.get("metadata") or {}
    if (meta.get("labels") or {}).get(MANAGED_BY) != MANAGED_BY_VALUE:
        return None
    notes = meta.get("annotations") or {}
    try:
        return TaskKey(
            dag_id=notes[f"{LABEL_PREFIX}dag-id"],
            run_id=notes[f"{LABEL_PREFIX}run-id"],
            task_id=notes[f"{LABEL_PREFIX}task-id"],
            map_index=int(notes[f"{LABEL_PREFIX}map-index"]),
            try_number=int(notes[f"{LABEL_PREFIX}try-number"]),
        )
    except (KeyError, ValueError):
        return None


@dataclass(frozen=True)
class PodSettings:
    """The executor-wide parts of every pod."""

    namespace: str
    agent_address: str
    image_pull_policy: str = "IfNotPresent"
    ca_configmap: str | None = None
    image_pull_secrets: tuple[str, ...] = ()
    deadline_grace_seconds: int = 60


def _context_env(job: TaskJob) -> dict[str, str]:
    key = job.key
    env = {
        "AIRFLOW_CTX_DAG_ID": key.dag_id,
        "AIRFLOW_CTX_TASK_ID": key.task_id,
        "AIRFLOW_CTX_DAG_RUN_ID": key.run_id,
        "AIRFLOW_CTX_TRY_NUMBER": str(key.try_number),
        "AIRFLOW_CTX_MAP_INDEX": str(key.map_index),
    }
    if job.context.get("logical_date"):
        env["AIRFLOW_CTX_LOGICAL_DATE"] = str(job.context["logical_date"])
    return env


def _container_env(job: TaskJob, settings: PodSettings) -> list[dict[str, str]]:
    env = {"LEOFLOW_AGENT_ADDRESS": settings.agent_address}
    if settings.ca_configmap:
        env["LEOFLOW_AGENT_TLS_CA"] = f"{CA_MOUNT_DIR}/ca.crt"
    env.update(_context_env(job))
    env.update(job.task.env)
    # The job's env comes last: it carries the try's own agent token.
    env.update(job.env)
    return [{"name": name, "value": value} for name, value in env.items()]


def _resources(job: TaskJob) -> dict[str, dict[str, str]]:
    spec = job.task.resources
    if spec is None:
        return {}
    out: dict[str, dict[str, str]] = {}
    for kind, quantities in (("requests", spec.requests), ("limits", spec.limits)):
        values = {k: v for k, v in (("cpu", quantities.cpu), ("memory", quantities.memory)) if v}
        if values:
            out[kind] = values
    return out


def build_pod(job: TaskJob, image: str, settings: PodSettings) -> Pod:
    """The pod manifest for one try: one non-root container running ``leoflow agent``."""
    key = job.key
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": settings.image_pull_policy,
        "args": ["agent"],
        "env": _container_env(job, settings),
        "resources": _resources(job),
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [container],
        "securityContext": {"runAsNonRoot": True},
        "enableServiceLinks": False,
    }
    placement = job.task.placement
    if placement is not None:
        if placement.node_selector:
            spec["nodeSelector"] = dict(placement.node_selector)
        if placement.tolerations:
            spec["tolerations"] = [t.model_dump(exclude_none=True) for t in placement.tolerations]
        if placement.service_account:
            spec["serviceAccountName"] = placement.service_account
    # Tasks get an API token only when they ask for an identity of their own.
    spec["automountServiceAccountToken"] = bool(placement and placement.service_account)
    if job.timeout_seconds:
        # The agent enforces execution_timeout and reports it; the deadline is the backstop.
        deadline = math.ceil(job.timeout_seconds) + settings.deadline_grace_seconds
        spec["activeDeadlineSeconds"] = max(1, deadline)
    if settings.ca_configmap:
        spec["volumes"] = [{"name": "leoflow-ca", "configMap": {"name": settings.ca_configmap}}]
        container["volumeMounts"] = [
            {"name": "leoflow-ca", "mountPath": CA_MOUNT_DIR, "readOnly": True}
        ]
    if settings.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": name} for name in settings.image_pull_secrets]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(key),
            "namespace": settings.namespace,
            "labels": pod_labels(key, job.tenant),
            "annotations": pod_annotations(key, job.tenant),
        },
        "spec": spec,
    }


# --------------------------------------------------------------------------------------------
# Reading a pod's state
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PodOutcome:
    """What a pod's current status means for its try."""

    state: Literal["pending", "running", "success", "failed"]
    error: str | None = None
    retryable: bool = True
    #: True when the pod must be deleted now (it will never finish by itself).
    delete: bool = False


def _task_container_status(pod: Pod) -> dict[str, Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    for status in statuses:
        if status.get("name") == CONTAINER_NAME:
            return status
    return statuses[0] if statuses else {}


def _memory_limit(pod: Pod) -> str | None:
    for container in (pod.get("spec") or {}).get("containers") or []:
        if container.get("name") == CONTAINER_NAME:
            return ((container.get("resources") or {}).get("limits") or {}).get("memory")
    return None


def _image(pod: Pod) -> str:
    for container in (pod.get("spec") or {}).get("containers") or []:
        if container.get("name") == CONTAINER_NAME:
            return str(container.get("image"))
    return "?"


def _failure(pod: Pod) -> PodOutcome:
    status = pod.get("status") or {}
    reason = status.get("reason")
    message = status.get("message")
    if reason == "DeadlineExceeded":
        deadline = (pod.get("spec") or {}).get("activeDeadlineSeconds")
        return PodOutcome(
            "failed",
            f"execution_timeout: the pod ran past its activeDeadlineSeconds ({deadline} s) "
            "and Kubernetes stopped it",
        )
    if reason == "Evicted":
        return PodOutcome("failed", f"the pod was evicted by its node: {message or 'no reason'}")
    terminated = (_task_container_status(pod).get("state") or {}).get("terminated") or {}
    code = terminated.get("exitCode")
    why = terminated.get("reason")
    if why == "OOMKilled":
        limit = _memory_limit(pod)
        detail = f"memory limit {limit}" if limit else "no memory limit set; the node ran out"
        return PodOutcome("failed", f"the task's container was OOMKilled ({detail})")
    if code is not None:
        text = f"the task's container exited with code {code}" + (f" ({why})" if why else "")
        tail = terminated.get("message") or message
        return PodOutcome("failed", f"{text}: {tail}" if tail else text)
    return PodOutcome(
        "failed",
        f"the pod failed: {reason or 'no reason given'}" + (f": {message}" if message else ""),
    )


def pod_outcome(pod: Pod) -> PodOutcome:
    """Map a pod's phase and container state to the try's state."""
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    if phase == "Succeeded":
        return PodOutcome("success")
    if phase == "Failed":
        return _failure(pod)
    waiting = (_task_container_status(pod).get("state") or {}).get("waiting") or {}
    why = waiting.get("reason")
    if why in START_FAILURES:
        detail = waiting.get("message")
        return PodOutcome(
            "failed",
            f"the task's container could not start: {why} for image {_image(pod)!r}"
            + (f" ({detail})" if detail else ""),
            retryable=why not in _NOT_RETRYABLE,
            delete=True,
        )
    if phase == "Running":
        return PodOutcome("running")
    return PodOutcome("pending")


def finished_at(pod: Pod) -> float | None:
    """When the task's container terminated (epoch seconds), if the pod says so."""
    terminated = (_task_container_status(pod).get("state") or {}).get("terminated") or {}
    stamp = terminated.get("finishedAt")
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
