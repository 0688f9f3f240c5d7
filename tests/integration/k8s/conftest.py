"""Fixtures for the Kubernetes executor tests.

No real cluster can run on this machine, so the Kubernetes API is kmock's emulator served over
HTTP on a loopback port (``k8s_standin.PodEmulator``) and the kubelet is a stand-in
(``k8s_standin.Kubelet``) that runs each pod's command as a real local process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import kmock
import pytest
from k8s_standin import Kubelet, PodEmulator
from k8s_testkit import AGENT_ADDRESS, NAMESPACE, EventLog, Factory
from kubernetes import client as k8s

from leoflow.executors.kubernetes import KubernetesExecutor


@pytest.fixture
async def emulator() -> AsyncIterator[PodEmulator]:
    """The Kubernetes API (kmock) on a loopback port."""
    async with PodEmulator() as emu, kmock.Server(emu):
        yield emu


@pytest.fixture
def api_url(emulator: PodEmulator) -> str:
    """Base URL of the emulated API server."""
    return str(emulator.url).rstrip("/")


@pytest.fixture
async def kubelet(api_url: str) -> AsyncIterator[Kubelet]:
    """The kubelet stand-in, following the task namespace."""
    stand_in = Kubelet(api_url, NAMESPACE)
    await stand_in.start()
    yield stand_in
    await stand_in.stop()


@pytest.fixture
async def make_executor(api_url: str) -> AsyncIterator[Factory]:
    """Start executors against the emulator (fast backoff); all are stopped at the end."""
    started: list[tuple[KubernetesExecutor, k8s.ApiClient]] = []

    async def make(**options: Any) -> tuple[KubernetesExecutor, EventLog]:
        config = k8s.Configuration()
        config.host = api_url
        api = k8s.ApiClient(config)
        defaults: dict[str, Any] = {
            "namespace": NAMESPACE,
            "agent_address": AGENT_ADDRESS,
            "api": api,
            "backoff_seconds": 0.01,
            "backoff_max_seconds": 0.05,
            "deadline_grace_seconds": 0,
        }
        executor = KubernetesExecutor(**{**defaults, **options})
        events = EventLog()
        await executor.start(events)
        started.append((executor, api))
        return executor, events

    yield make
    for executor, api in started:
        await executor.stop()
        api.close()
