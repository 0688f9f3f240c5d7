"""The Kubernetes executor when the Kubernetes API misbehaves: 409, 429, 5xx, 403, 410 Gone.

No real cluster can run on this machine, so the API server is kmock's emulator on a loopback
port with scripted faults (``k8s_standin.Fault``), and the kubelet is a stand-in that runs each
pod's command as a real local process.
"""

from __future__ import annotations

import kmock
from k8s_standin import Fault, Kubelet, PodEmulator
from k8s_testkit import Factory, api_pods, make_job

CREATE = kmock.action.CREATE


async def test_k8s_create_retried_with_backoff_on_5xx_and_429(
    api_url: str, emulator: PodEmulator, kubelet: Kubelet, make_executor: Factory
) -> None:
    """500, 503 and 429 on create are retried with backoff; the pod is created exactly once.

    No real cluster can run on this machine: the API server is kmock (answering the scripted
    errors) and the kubelet is a stand-in.
    """
    for status in (500, 503, 429):
        emulator.inject(Fault(CREATE, status=status))
    executor, events = await make_executor()
    job = make_job("flaky", image="test/ok")
    await executor.submit(job)
    done = await events.wait_terminal(job.key)
    assert done.state == "success", done.error
    assert len(emulator["post"]) == 4
    assert executor.metrics["api_retries"] == 3
    assert executor.metrics["pods_created"] == 1
    assert len(await api_pods(api_url)) == 1


async def test_k8s_lost_create_response_then_409_is_already_submitted(
    api_url: str, emulator: PodEmulator, kubelet: Kubelet, make_executor: Factory
) -> None:
    """A create that succeeded but answered 500 is retried, gets 409, and counts as submitted.

    No real cluster can run on this machine: the API server is kmock, scripted to store the pod
    and then answer 500 (a lost response); the kubelet is a stand-in.
    """
    emulator.inject(Fault(CREATE, status=500, after_store=True))
    executor, events = await make_executor()
    job = make_job("lost", image="test/ok")
    await executor.submit(job)
    done = await events.wait_terminal(job.key)
    assert done.state == "success", done.error
    assert executor.metrics["create_conflicts"] == 1
    assert len(await api_pods(api_url)) == 1


async def test_k8s_create_gives_up_after_bounded_attempts(
    api_url: str, emulator: PodEmulator, make_executor: Factory
) -> None:
    """An API answering 500 for good fails the try after api_attempts, saying why.

    No real cluster can run on this machine: the API server is kmock, scripted to fail.
    """
    emulator.inject(Fault(CREATE, status=500, times=1000))
    executor, events = await make_executor(api_attempts=3)
    job = make_job("doomed", image="test/ok")
    await executor.submit(job)
    done = await events.wait_terminal(job.key)
    assert done.state == "failed"
    assert done.retryable is True
    assert "after 3 attempt(s)" in (done.error or "")
    assert "HTTP 500" in (done.error or "")
    assert len(emulator["post"]) == 3
    assert executor.running() == set()
    assert await api_pods(api_url) == []


async def test_k8s_forbidden_names_the_missing_rbac_permission(
    emulator: PodEmulator, make_executor: Factory
) -> None:
    """403 is not retried; the failure names the permission and namespace to grant.

    No real cluster can run on this machine: the API server is kmock, scripted to answer 403.
    """
    emulator.inject(Fault(CREATE, status=403, times=1000))
    executor, events = await make_executor()
    job = make_job("denied", image="test/ok")
    await executor.submit(job)
    done = await events.wait_terminal(job.key)
    assert done.state == "failed"
    assert done.retryable is False
    assert "RBAC permission 'create' on 'pods' in namespace 'leoflow-tasks'" in (done.error or "")
    assert "forbidden" in (done.error or "")
    assert len(emulator["post"]) == 1


async def test_k8s_missing_image_fails_without_a_pod(api_url: str, make_executor: Factory) -> None:
    """A job with no image (and no default) fails at once, naming where to set it.

    No real cluster can run on this machine: the API server is kmock.
    """
    executor, events = await make_executor()
    job = make_job("imageless", image=None)
    await executor.submit(job)
    done = await events.wait_terminal(job.key)
    assert done.state == "failed"
    assert "runtime.image" in (done.error or "")
    assert await api_pods(api_url) == []


async def test_k8s_watch_gone_410_relists_and_keeps_tracking(
    emulator: PodEmulator, kubelet: Kubelet, make_executor: Factory
) -> None:
    """A watch answered with 410 Gone makes the executor list again; no event is lost.

    No real cluster can run on this machine: the API server is kmock (scripted to expire the
    first watch) and the kubelet is a stand-in.
    """
    gone = emulator.inject(Fault(kmock.action.WATCH, watch_gone=True))
    executor, events = await make_executor()
    job = make_job("survivor", image="test/ok")
    await executor.submit(job)
    done = await events.wait_terminal(job.key)
    assert done.state == "success", done.error
    assert gone.hits == 1
    assert executor.metrics["watch_relists"] >= 1


async def test_k8s_watch_5xx_is_retried(
    emulator: PodEmulator, kubelet: Kubelet, make_executor: Factory
) -> None:
    """A watch answered with 500 twice is opened again with backoff; events still arrive.

    No real cluster can run on this machine: the API server is kmock (scripted to fail the
    first watches) and the kubelet is a stand-in.
    """
    broken = emulator.inject(Fault(kmock.action.WATCH, status=500, times=2))
    executor, events = await make_executor()
    job = make_job("patient", image="test/ok")
    await executor.submit(job)
    done = await events.wait_terminal(job.key)
    assert done.state == "success", done.error
    assert broken.hits == 2


async def test_k8s_invalid_pod_422_is_not_retried(
    api_url: str, emulator: PodEmulator, make_executor: Factory
) -> None:
    """422 Invalid is the manifest's fault: one attempt, and the failure carries the message.

    No real cluster can run on this machine: the API server is kmock, which checks names and
    label values as the API server does (a pod labelled ``map-index=-1`` is refused).
    """
    async with emulator.clients[0].post(
        "/api/v1/namespaces/leoflow-tasks/pods",
        json={"metadata": {"name": "x", "labels": {"leoflow.io/map-index": "-1"}}},
    ) as resp:
        assert resp.status == 422
    emulator.inject(Fault(CREATE, status=422))
    executor, events = await make_executor()
    job = make_job("invalid", image="test/ok")
    await executor.submit(job)
    done = await events.wait_terminal(job.key)
    assert done.state == "failed"
    assert "after 1 attempt(s): HTTP 422" in (done.error or "")
    assert executor.metrics.get("api_retries", 0) == 0
    assert await api_pods(api_url) == []
