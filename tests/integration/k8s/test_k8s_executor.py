"""The Kubernetes executor against an HTTP Kubernetes API, with pods run as real processes.

No real cluster can run on this machine, so every test here talks to kmock's Kubernetes API
emulator over loopback HTTP, and a kubelet stand-in (``k8s_standin.Kubelet``) runs each pod's
command as a real local process with the pod's environment and reports its phases.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import kubernetes_validate
import pytest
from k8s_standin import Kubelet, PodEmulator
from k8s_testkit import (
    AGENT_ADDRESS,
    NAMESPACE,
    EventLog,
    Factory,
    api_pods,
    make_job,
    wait_until,
)

from leoflow.executors._k8s_pods import pod_name
from leoflow.executors.kubernetes import KubernetesExecutor


async def test_k8s_pod_spec_carries_identity_resources_and_placement(
    api_url: str, make_executor: Factory
) -> None:
    """The pod has the try's labels, env, resources, placement, deadline and a non-root container.

    No real cluster can run on this machine: the API server is kmock, and no kubelet runs here
    (the pod's spec is what is under test).
    """
    executor, _ = await make_executor(ca_configmap="leoflow-ca", deadline_grace_seconds=30)
    job = make_job(
        "extract",
        image="registry.example/dags/etl@sha256:" + "a" * 64,
        map_index=4,
        try_number=2,
        timeout=90,
        resources={"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
        placement={
            "node_selector": {"pool": "batch"},
            "tolerations": [
                {"key": "dedicated", "operator": "Equal", "value": "etl", "effect": "NoSchedule"}
            ],
            "service_account": "etl-reader",
        },
    )
    await executor.submit(job)

    async def created() -> bool:
        return len(await api_pods(api_url)) == 1

    await wait_until(created, "the pod")
    (pod,) = await api_pods(api_url)
    meta, spec = pod["metadata"], pod["spec"]
    assert meta["name"] == pod_name(job.key)
    assert meta["labels"]["leoflow.io/dag-id"] == "k8s_dag"
    assert meta["labels"]["leoflow.io/task-id"] == "extract"
    assert meta["labels"]["leoflow.io/run-id"] == "manual__2026-11-28T10_00_00_00_00"
    assert meta["labels"]["leoflow.io/map-index"] == "4"
    assert meta["labels"]["leoflow.io/try-number"] == "2"
    assert meta["annotations"]["leoflow.io/run-id"] == job.key.run_id
    assert spec["restartPolicy"] == "Never"
    assert spec["activeDeadlineSeconds"] == 120
    assert spec["nodeSelector"] == {"pool": "batch"}
    assert spec["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "etl", "effect": "NoSchedule"}
    ]
    assert spec["serviceAccountName"] == "etl-reader"
    (container,) = spec["containers"]
    assert container["name"] == "task"
    assert container["image"] == job.context["image"]
    assert container["args"] == ["agent"]
    assert container["resources"] == {
        "requests": {"cpu": "250m", "memory": "256Mi"},
        "limits": {"memory": "512Mi"},
    }
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["LEOFLOW_AGENT_ADDRESS"] == AGENT_ADDRESS
    assert env["LEOFLOW_AGENT_TOKEN"] == "token-for-extract-2"
    assert env["LEOFLOW_AGENT_TLS_CA"] == "/etc/leoflow/tls/ca.crt"
    assert env["AIRFLOW_CTX_TASK_ID"] == "extract"
    assert env["AIRFLOW_CTX_MAP_INDEX"] == "4"
    assert env["TASK_LEVEL"] == "yes"
    assert container["volumeMounts"] == [
        {"name": "leoflow-ca", "mountPath": "/etc/leoflow/tls", "readOnly": True}
    ]
    assert spec["volumes"] == [{"name": "leoflow-ca", "configMap": {"name": "leoflow-ca"}}]
    # What the executor sent is a valid Pod for the Kubernetes API schema, unknown fields refused.
    sent = {k: v for k, v in pod.items() if k != "status"}
    sent["metadata"] = {k: meta[k] for k in ("name", "namespace", "labels", "annotations")}
    kubernetes_validate.validate(sent, "1.33", strict=True)
    assert executor.running() == {job.key}
    assert executor.metrics["pods_created"] == 1


async def test_k8s_success_runs_the_pod_command_with_its_env(
    api_url: str, kubelet: Kubelet, make_executor: Factory
) -> None:
    """A pod that exits 0 gives running then success; the process saw the pod's environment.

    No real cluster can run on this machine: the API server is kmock and the kubelet is a
    stand-in that ran the pod's command as a local process.
    """
    executor, events = await make_executor()
    job = make_job("hello", image="test/ok")
    await executor.submit(job)
    done = await events.wait_terminal(job.key)
    assert done.state == "success", done.error
    assert events.states(job.key) == ["running", "success"]
    output = kubelet.output(pod_name(job.key))
    assert f"agent ['agent'] hello {AGENT_ADDRESS} token-for-hello-1" in output
    assert executor.running() == set()
    assert executor.metrics["pods_succeeded"] == 1


async def test_k8s_failed_container_reports_exit_code(
    kubelet: Kubelet, make_executor: Factory
) -> None:
    """A container exiting 3 gives a failed event naming the code.

    No real cluster can run on this machine: the API server is kmock and the kubelet is a
    stand-in running the pod's command as a local process.
    """
    executor, events = await make_executor()
    job = make_job("breaks", image="test/fail")
    await executor.submit(job)
    done = await events.wait_terminal(job.key)
    assert done.state == "failed"
    assert "exited with code 3 (Error)" in (done.error or "")
    assert events.states(job.key) == ["running", "failed"]


async def test_k8s_oomkilled_is_a_failure_with_the_memory_limit(
    kubelet: Kubelet, make_executor: Factory
) -> None:
    """OOMKilled becomes a failure that says so and names the memory limit.

    No real cluster can run on this machine: the API server is kmock; the kubelet stand-in
    SIGKILLs the process and reports OOMKilled (exit 137), as a node does.
    """
    executor, events = await make_executor()
    job = make_job("hungry", image="test/oom", resources={"limits": {"memory": "512Mi"}})
    await executor.submit(job)
    done = await events.wait_terminal(job.key)
    assert done.state == "failed"
    assert done.error == "the task's container was OOMKilled (memory limit 512Mi)"


async def test_k8s_image_pull_failure_fails_the_try_and_deletes_the_pod(
    api_url: str, kubelet: Kubelet, make_executor: Factory
) -> None:
    """ErrImagePull fails the try with the reason and the image, and the pod is removed.

    No real cluster can run on this machine: the API server is kmock and the kubelet stand-in
    reports the pull error for an image it does not have.
    """
    executor, events = await make_executor()
    job = make_job("pull", image="missing/image")
    await executor.submit(job)
    done = await events.wait_terminal(job.key)
    assert done.state == "failed"
    assert "ErrImagePull for image 'missing/image'" in (done.error or "")
    assert "pull access denied" in (done.error or "")
    assert events.states(job.key) == ["failed"]

    async def gone() -> bool:
        return await api_pods(api_url) == []

    await wait_until(gone, "the failed pod's deletion")
    assert executor.running() == set()


async def test_k8s_deadline_exceeded_is_reported_as_a_timeout(
    kubelet: Kubelet, make_executor: Factory
) -> None:
    """activeDeadlineSeconds stops a pod that runs too long; the failure says it timed out.

    No real cluster can run on this machine: the API server is kmock and the kubelet stand-in
    enforces the pod's activeDeadlineSeconds on its local process.
    """
    executor, events = await make_executor()
    job = make_job("slow", image="test/sleep", timeout=1)
    await executor.submit(job)
    done = await events.wait_terminal(job.key)
    assert done.state == "failed"
    assert "execution_timeout" in (done.error or "")
    assert "activeDeadlineSeconds (1 s)" in (done.error or "")


async def test_k8s_cancel_deletes_the_pod_and_kills_the_process(
    api_url: str, kubelet: Kubelet, make_executor: Factory
) -> None:
    """cancel() deletes the pod (its process dies) and reports failed with the reason.

    No real cluster can run on this machine: the API server is kmock and the kubelet stand-in
    kills the pod's local process when the pod is deleted.
    """
    executor, events = await make_executor()
    job = make_job("forever", image="test/sleep")
    await executor.submit(job)
    await events.wait_for(job.key, "running")
    await executor.cancel(job.key, "marked failed by admin")
    done = await events.wait_terminal(job.key)
    assert (done.state, done.error) == ("failed", "marked failed by admin")
    container = kubelet.containers[pod_name(job.key)]
    assert container.proc is not None
    await container.proc.wait()
    assert container.proc.returncode is not None

    async def gone() -> bool:
        return await api_pods(api_url) == []

    await wait_until(gone, "the cancelled pod's deletion")
    assert executor.running() == set()
    assert events.states(job.key) == ["running", "failed"]


async def test_k8s_resubmitting_a_try_creates_no_second_pod(
    api_url: str, emulator: PodEmulator, kubelet: Kubelet, make_executor: Factory
) -> None:
    """The same key submitted again, to this executor or another one, makes no second pod.

    No real cluster can run on this machine: the API server is kmock and the kubelet is a
    stand-in; pods are counted through the HTTP API.
    """
    first, events = await make_executor()
    job = make_job("once", image="test/sleep")
    await first.submit(job)
    await first.submit(job)
    await events.wait_for(job.key, "running")
    # Another control plane (a second replica, or one that does not know the pod yet).
    second, _ = await make_executor()
    await second.submit(job)
    assert len(await api_pods(api_url)) == 1
    assert first.metrics["pods_created"] == 1
    # The second executor adopted the pod on start, so it did not even try to create it.
    assert second.metrics.get("pods_created", 0) == 0
    assert second.metrics["pods_adopted"] == 1
    assert job.key in second.running()
    await first.cancel(job.key, "test over")
    await events.wait_terminal(job.key)


async def test_k8s_restart_adopts_running_pods_without_duplicates(
    api_url: str, emulator: PodEmulator, kubelet: Kubelet, make_executor: Factory
) -> None:
    """A control plane restarting while pods run adopts them; nothing is created twice.

    No real cluster can run on this machine: the API server is kmock and the kubelet stand-in
    keeps running the pods' processes while no executor is up.
    """
    before, events = await make_executor()
    stays = make_job("stays", image="test/sleep")
    dies = make_job("dies", image="test/sleep")
    for job in (stays, dies):
        await before.submit(job)
        await events.wait_for(job.key, "running")
    await before.stop()
    # A pod unrelated to Leoflow in the same namespace must be left alone.
    async with emulator.clients[0].post(
        f"/api/v1/namespaces/{NAMESPACE}/pods",
        json={"metadata": {"name": "someone-else"}, "spec": {"containers": []}},
    ) as resp:
        assert resp.status == 200
    # While the control plane is down, one pod's process ends (node shutdown: SIGTERM).
    kubelet.terminate(pod_name(dies.key))

    async def dies_failed() -> bool:
        pods = {p["metadata"]["name"]: p for p in await api_pods(api_url)}
        return pods[pod_name(dies.key)].get("status", {}).get("phase") == "Failed"

    await wait_until(dies_failed, "the terminated pod to fail")
    posts_before = len(emulator["post"])

    after, events_after = await make_executor()
    assert after.running() == {stays.key}
    assert after.metrics["pods_adopted"] == 2
    # The pod that ended while nobody watched is reported now.
    done = await events_after.wait_terminal(dies.key)
    assert done.state == "failed"
    assert "exited with code 143" in (done.error or "")
    await after.submit(stays)
    await after.submit(dies)
    assert len(emulator["post"]) == posts_before
    names = sorted(p["metadata"]["name"] for p in await api_pods(api_url))
    assert names == sorted([pod_name(stays.key), pod_name(dies.key), "someone-else"])
    await after.cancel(stays.key, "test over")
    assert (await events_after.wait_terminal(stays.key)).error == "test over"


async def test_k8s_finished_pods_are_collected_after_gc_after_seconds(
    api_url: str, kubelet: Kubelet, make_executor: Factory
) -> None:
    """Finished pods stay gc_after_seconds for their logs, then are deleted; running ones stay.

    No real cluster can run on this machine: the API server is kmock and the kubelet is a
    stand-in. The executor's clock is injected, so no test time passes.
    """
    now = [1_000_000.0]
    executor, events = await make_executor(gc_after_seconds=600, clock=lambda: now[0])
    finished, running = make_job("quick", image="test/ok"), make_job("long", image="test/sleep")
    await executor.submit(finished)
    await executor.submit(running)
    await events.wait_terminal(finished.key)
    await events.wait_for(running.key, "running")
    ended = max(now[0], _finished_at(await api_pods(api_url), pod_name(finished.key)))
    assert await executor.collect_garbage(now=ended + 599) == 0
    assert await executor.collect_garbage(now=ended + 601) == 1

    async def only_running_left() -> bool:
        return [p["metadata"]["name"] for p in await api_pods(api_url)] == [pod_name(running.key)]

    await wait_until(only_running_left, "the finished pod's collection")
    assert executor.metrics["pods_collected"] == 1
    await executor.cancel(running.key, "test over")


def _finished_at(pods: list[dict], name: str) -> float:
    (pod,) = [p for p in pods if p["metadata"]["name"] == name]
    stamp = pod["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"]
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


async def test_k8s_client_from_kubeconfig_when_no_api_is_given(
    api_url: str, kubelet: Kubelet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without an ApiClient the executor reads the kubeconfig (not in a cluster) and works.

    No real cluster can run on this machine: the kubeconfig points at kmock's API emulator and
    the kubelet is a stand-in.
    """
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "emu", "cluster": {"server": api_url}}],
                "users": [{"name": "me", "user": {"token": "t"}}],
                "contexts": [{"name": "emu", "context": {"cluster": "emu", "user": "me"}}],
                "current-context": "emu",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    executor = KubernetesExecutor(namespace=NAMESPACE, agent_address=AGENT_ADDRESS)
    events = EventLog()
    await executor.start(events)
    try:
        job = make_job("configured", image="test/ok")
        await executor.submit(job)
        assert (await events.wait_terminal(job.key)).state == "success"
    finally:
        await executor.stop()
