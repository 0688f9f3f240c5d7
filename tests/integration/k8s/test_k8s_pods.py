"""Pod names, labels and status reading of the Kubernetes executor (pure functions).

No real cluster can run on this machine; these tests need none: they check the manifest the
executor would send (against the Kubernetes API schema, strictly) and how it reads pod statuses
shaped as a kubelet reports them.
"""

from __future__ import annotations

import re

import kubernetes_validate
import pytest
from k8s_testkit import make_job
from kubernetes import client as k8s

from leoflow.errors import LeoflowError
from leoflow.executors._k8s_api import PodApi
from leoflow.executors._k8s_pods import (
    PodSettings,
    build_pod,
    key_from_pod,
    label_value,
    pod_name,
    pod_outcome,
)
from leoflow.executors.base import TaskKey
from leoflow.executors.kubernetes import options_from_env

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
SETTINGS = PodSettings(namespace="tasks", agent_address="cp:50051")


@pytest.mark.parametrize(
    "key",
    [
        TaskKey("etl", "manual__2026-11-28T10:00:00+00:00", "extract"),
        TaskKey("A" * 200, "scheduled__" + "9" * 300, "Task.With_Odd-Chars" * 10, 12345, 99),
        TaskKey("___", "-", "..", -1, 1),
    ],
)
def test_k8s_pod_name_is_a_deterministic_dns_label(key: TaskKey) -> None:
    """Same key, same name; always a valid DNS-1123 label of at most 63 characters."""
    name = pod_name(key)
    assert name == pod_name(key)
    assert len(name) <= 63
    assert DNS_LABEL.match(name), name


def test_k8s_pod_name_differs_for_every_part_of_the_key() -> None:
    """Try number, map index, run and task each change the name (no collisions on retries)."""
    base = TaskKey("etl", "run_1", "extract", -1, 1)
    variants = [
        base,
        TaskKey("etl", "run_1", "extract", -1, 2),
        TaskKey("etl", "run_1", "extract", 0, 1),
        TaskKey("etl", "run_2", "extract", -1, 1),
        TaskKey("etl", "run_1", "Extract", -1, 1),
        TaskKey("etl2", "run_1", "extract", -1, 1),
    ]
    assert len({pod_name(k) for k in variants}) == len(variants)


@pytest.mark.parametrize(
    "raw", ["manual__2026-11-28T10:00:00+00:00", "x" * 100, "_leading", "ünïcode run", ""]
)
def test_k8s_label_values_follow_the_label_rules(raw: str) -> None:
    """Sanitised label values are at most 63 chars with alphanumeric ends."""
    value = label_value(raw)
    assert len(value) <= 63
    assert LABEL_VALUE.match(value), value


def test_k8s_key_round_trips_through_the_annotations() -> None:
    """An adopted pod gives back the exact key, however its labels were squeezed."""
    job = make_job("weird.task-Name", run_id="backfill__2026-01-01T00:00:00+00:00", map_index=7)
    pod = build_pod(job, "img:1", SETTINGS)
    assert key_from_pod(pod) == job.key
    assert key_from_pod({"metadata": {"name": "x", "labels": {"app": "other"}}}) is None


def test_k8s_minimal_manifest_is_a_strictly_valid_pod() -> None:
    """A task with no resources or placement still yields a valid, locked-down pod."""
    pod = build_pod(make_job("plain"), "img:1", SETTINGS)
    kubernetes_validate.validate(pod, "1.33", strict=True)
    # The schema does not check label syntax; the API server does, and refuses the pod.
    for value in pod["metadata"]["labels"].values():
        assert LABEL_VALUE.match(value), value
    assert "leoflow.io/map-index" not in pod["metadata"]["labels"]
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert "activeDeadlineSeconds" not in pod["spec"]


def _pod(phase: str, state: dict | None = None, **status: str) -> dict:
    pod: dict = {
        "spec": {"containers": [{"name": "task", "image": "reg/img:1"}]},
        "status": {"phase": phase, **status},
    }
    if state is not None:
        pod["status"]["containerStatuses"] = [{"name": "task", "state": state}]
    return pod


@pytest.mark.parametrize(
    ("pod", "state", "error_part", "retryable", "delete"),
    [
        (_pod("Pending"), "pending", None, True, False),
        (
            _pod("Pending", {"waiting": {"reason": "ContainerCreating"}}),
            "pending",
            None,
            True,
            False,
        ),
        (_pod("Running", {"running": {}}), "running", None, True, False),
        (_pod("Succeeded", {"terminated": {"exitCode": 0}}), "success", None, True, False),
        (
            _pod("Failed", {"terminated": {"exitCode": 2, "reason": "Error"}}),
            "failed",
            "exited with code 2 (Error)",
            True,
            False,
        ),
        (
            _pod("Failed", {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}),
            "failed",
            "OOMKilled (no memory limit set",
            True,
            False,
        ),
        (_pod("Failed", reason="DeadlineExceeded"), "failed", "execution_timeout", True, False),
        (
            _pod("Failed", reason="Evicted", message="low on memory"),
            "failed",
            "evicted by its node: low on memory",
            True,
            False,
        ),
        (
            _pod("Pending", {"waiting": {"reason": "ImagePullBackOff"}}),
            "failed",
            "ImagePullBackOff for image 'reg/img:1'",
            True,
            True,
        ),
        (
            _pod("Pending", {"waiting": {"reason": "InvalidImageName"}}),
            "failed",
            "InvalidImageName",
            False,
            True,
        ),
        (
            _pod(
                "Pending",
                {
                    "waiting": {
                        "reason": "CreateContainerConfigError",
                        "message": 'secret "x" not found',
                    }
                },
            ),
            "failed",
            'secret "x" not found',
            True,
            True,
        ),
    ],
)
def test_k8s_pod_outcome_table(
    pod: dict, state: str, error_part: str | None, retryable: bool, delete: bool
) -> None:
    """Phases and container states map to the try's state, with the reason in the error."""
    outcome = pod_outcome(pod)
    assert outcome.state == state
    if error_part is None:
        assert outcome.error is None
    else:
        assert error_part in (outcome.error or "")
    assert (outcome.retryable, outcome.delete) == (retryable, delete)


def test_k8s_options_from_the_charts_environment() -> None:
    """The chart's LEOFLOW_K8S_* variables become executor options; missing ones are named."""
    env = {
        "LEOFLOW_K8S_NAMESPACE": "tasks",
        "LEOFLOW_AGENT_ADDRESS": "leoflow.ns.svc:9091",
        "LEOFLOW_K8S_POD_GC_SECONDS": "120",
        "LEOFLOW_AGENT_TLS_CA_CONFIGMAP": "leoflow-agent-ca",
    }
    assert options_from_env(env) == {
        "namespace": "tasks",
        "agent_address": "leoflow.ns.svc:9091",
        "gc_after_seconds": 120.0,
        "ca_configmap": "leoflow-agent-ca",
    }
    with pytest.raises(LeoflowError) as err:
        options_from_env({"LEOFLOW_K8S_NAMESPACE": "tasks"})
    assert err.value.field == "LEOFLOW_AGENT_ADDRESS"


def test_k8s_backoff_doubles_with_jitter_and_is_capped() -> None:
    """Retry n waits between half and all of min(cap, base * 2**(n-1))."""
    pods = PodApi(
        k8s.ApiClient(k8s.Configuration()), "tasks", backoff_seconds=0.25, backoff_max_seconds=2.0
    )
    try:
        for attempt, ceiling in [(1, 0.25), (2, 0.5), (3, 1.0), (4, 2.0), (5, 2.0), (9, 2.0)]:
            delays = [pods.delay(attempt) for _ in range(50)]
            assert all(ceiling / 2 <= d <= ceiling for d in delays), (attempt, delays)
            assert len(set(delays)) > 1  # jittered, so replicas do not retry in lockstep
    finally:
        pods.close()
