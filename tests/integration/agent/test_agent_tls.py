"""The agent service over TLS: secrets are served, and a whole try runs through a TLS channel."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from leoflow.executors.agent import AgentExecutor
from leoflow.executors.base import TaskKey
from leoflow.rpc import agent_pb2 as pb
from leoflow.rpc import agent_pb2_grpc as pb_grpc
from leoflow.rpc.server import AgentTLS, bind_agent_server
from leoflow.rpc.servicer import AgentServiceConfig
from leoflow.scheduler.model import DecideConfig
from leoflow.scheduler.service import Scheduler
from leoflow.store.api import DagRunState, TIState, Variable

ONE = """
import os
from airflow.sdk import DAG, task


@task
def read_secret() -> str:
    return os.environ["AIRFLOW_VAR_TOKEN"]


with DAG("agent_tls", schedule=None):
    read_secret()
"""


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 / localhost (it is its own CA)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp / "tls.crt", tmp / "tls.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
async def tls_service(tmp_path, store, redis_store, settings, projects):
    cert, key = _self_signed(tmp_path)
    config = AgentServiceConfig(
        logs_dir=settings.logs_dir,
        heartbeat_interval_seconds=0.5,
        allow_insecure_secrets=False,
        resolve_dag_file=projects.dag_file,
    )
    server, port, _servicer = await bind_agent_server(
        store,
        redis_store,
        settings,
        host="127.0.0.1",
        port=0,
        tls=AgentTLS(cert, key),
        config=config,
    )
    yield f"127.0.0.1:{port}", cert
    await server.stop(grace=1)


async def test_secrets_are_served_over_tls(store, projects, tls_service, agent_service) -> None:
    address, ca = tls_service
    await projects.register("agent_tls", ONE)
    await store.put_variable("default", Variable(key="token", value="s3cret"))
    run = await store.create_run("default", "agent_tls", run_id="r1")
    async with store.transaction() as tx:
        await tx.create_task_instances(run.id)
    ti = await store.get_ti("default", "agent_tls", "r1", "read_secret")
    await store.transition_ti(ti.id, TIState.SCHEDULED, expected=[None])
    await store.transition_ti(ti.id, TIState.QUEUED, expected=[TIState.SCHEDULED])
    token = agent_service.issuer.mint(TaskKey("agent_tls", "r1", "read_secret", -1, 1))
    md = (("authorization", f"Bearer {token}"),)
    creds = grpc.ssl_channel_credentials(ca.read_bytes())
    async with grpc.aio.secure_channel(address, creds) as channel:
        secrets = await pb_grpc.AgentStub(channel).GetSecrets(pb.GetSecretsRequest(), metadata=md)
    assert dict(secrets.variables) == {"token": "s3cret"}
    # The same service refuses a plaintext client outright (no TLS handshake).
    async with grpc.aio.insecure_channel(address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await pb_grpc.AgentStub(channel).GetSecrets(
                pb.GetSecretsRequest(), metadata=md, timeout=5
            )
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_a_try_runs_through_a_tls_channel(
    tmp_path, store, redis_store, projects, tls_service, agent_service, poll
) -> None:
    address, ca = tls_service
    await projects.register("agent_tls", ONE)
    await store.put_variable("default", Variable(key="token", value="s3cret"))
    executor = AgentExecutor(
        address=address, issuer=agent_service.issuer, work_root=tmp_path, tls_ca=ca
    )
    sched = Scheduler(
        store,
        redis_store,
        executor,
        projects.resolve,
        logs_dir=agent_service.logs_dir,
        config=DecideConfig(heartbeat_timeout=dt.timedelta(seconds=300)),
        sweep_seconds=0.25,
    )
    task = asyncio.create_task(sched.run_forever())
    try:
        await store.create_run("default", "agent_tls", run_id="r1")
        sched.wake()

        async def finished():
            run = await store.get_run("default", "agent_tls", "r1")
            return run if run.state in (DagRunState.SUCCESS, DagRunState.FAILED) else None

        run = await poll(finished, timeout=60, what="the TLS run to finish")
        assert run.state is DagRunState.SUCCESS
        value = await redis_store.get_xcom(
            "default", "agent_tls", "r1", "read_secret", "return_value"
        )
        assert value == "s3cret"
    finally:
        sched.stop()
        await asyncio.wait_for(task, 30)
