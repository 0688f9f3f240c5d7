"""Starting the agent gRPC service: plaintext on loopback, TLS (optionally mutual) elsewhere.

``leoflow server`` (Pro) and Lite call ``start_agent_server``; tests and benchmarks use
``bind_agent_server``, which also returns the bound port (``port=0`` picks a free one) and the
servicer. TLS comes from files: the server's certificate and key, and optionally a client CA
(then agents must present a certificate signed by it). ``AgentTLS.from_env`` reads
``LEOFLOW_AGENT_TLS_CERT``, ``LEOFLOW_AGENT_TLS_KEY`` and ``LEOFLOW_AGENT_TLS_CLIENT_CA``,
the names the Helm chart sets.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

from leoflow.errors import LeoflowError
from leoflow.rpc import agent_pb2_grpc as pb_grpc
from leoflow.rpc.servicer import AgentServiceConfig, AgentServicer, DagFileResolver
from leoflow.rpc.tokens import AgentTokenIssuer
from leoflow.settings import Settings
from leoflow.spec import DagSpec
from leoflow.store.redis_store import RedisStore
from leoflow.store.store import Store

if TYPE_CHECKING:
    from leoflow.executors.agent import AgentExecutor

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "[::1]", "localhost"})
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
"""Room for a 256 KB XCom value and a large task spec; anything bigger is refused by gRPC."""


class AgentServerError(LeoflowError):
    """The agent service cannot start as configured."""


@dataclass(frozen=True)
class AgentTLS:
    """Certificate files of the agent service."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AgentTLS | None:
        """TLS from ``LEOFLOW_AGENT_TLS_CERT``/``_KEY`` (``_CLIENT_CA``), or None when unset."""
        env = os.environ if env is None else env
        cert, key = env.get("LEOFLOW_AGENT_TLS_CERT"), env.get("LEOFLOW_AGENT_TLS_KEY")
        if not cert and not key:
            return None
        if not cert or not key:
            raise AgentServerError(
                "agent TLS needs both a certificate and a key",
                field="LEOFLOW_AGENT_TLS_CERT" if not cert else "LEOFLOW_AGENT_TLS_KEY",
                hint="set both LEOFLOW_AGENT_TLS_CERT and LEOFLOW_AGENT_TLS_KEY, or neither",
            )
        ca = env.get("LEOFLOW_AGENT_TLS_CLIENT_CA")
        return cls(Path(cert), Path(key), Path(ca) if ca else None)

    def credentials(self) -> grpc.ServerCredentials:
        """gRPC server credentials from the files (AgentServerError when unreadable)."""
        try:
            cert = self.cert_file.read_bytes()
            key = self.key_file.read_bytes()
            ca = self.client_ca_file.read_bytes() if self.client_ca_file else None
        except OSError as exc:
            raise AgentServerError(
                f"cannot read agent TLS file: {exc}",
                path=getattr(exc, "filename", None),
                hint="check LEOFLOW_AGENT_TLS_CERT, LEOFLOW_AGENT_TLS_KEY and _CLIENT_CA",
            ) from exc
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
        )


def is_loopback(host: str) -> bool:
    """True for addresses only this host can reach."""
    return host in LOOPBACK_HOSTS or host.startswith("127.")


async def bind_agent_server(
    store: Store,
    redis: RedisStore,
    settings: Settings,
    *,
    host: str,
    port: int,
    tls: AgentTLS | None = None,
    config: AgentServiceConfig | None = None,
    on_change: Callable[[], None] | None = None,
    resolve_dag_file: DagFileResolver | None = None,
) -> tuple[grpc.aio.Server, int, AgentServicer]:
    """Create, bind and start the service; returns (server, bound port, servicer).

    Without ``config``: logs under ``settings.logs_dir``, a 5 s heartbeat interval, secrets
    over plaintext only on a loopback address (or with LEOFLOW_AGENT_INSECURE_SECRETS=1),
    DAG files at their place in the DAG image unless ``resolve_dag_file`` says otherwise, and
    ``on_change`` (e.g. an in-process ``Scheduler.wake``) called after each terminal report.
    """
    issuer = AgentTokenIssuer(settings.jwt_secret)
    if config is None:
        config = AgentServiceConfig(
            logs_dir=settings.logs_dir,
            allow_insecure_secrets=is_loopback(host)
            or os.environ.get("LEOFLOW_AGENT_INSECURE_SECRETS") == "1",
            on_change=on_change,
        )
        if resolve_dag_file is not None:
            config.resolve_dag_file = resolve_dag_file
    servicer = AgentServicer(store, redis, issuer, config)
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ]
    )
    pb_grpc.add_AgentServicer_to_server(servicer, server)
    address = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
    try:
        if tls is not None:
            bound = server.add_secure_port(address, tls.credentials())
        else:
            bound = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise AgentServerError(
            f"cannot listen on {address} for the agent service: {exc}",
            field="LEOFLOW_GRPC_PORT",
            hint="pick a free port (LEOFLOW_GRPC_PORT) or stop what uses it",
        ) from exc
    if not bound:
        raise AgentServerError(
            f"cannot listen on {address} for the agent service",
            field="LEOFLOW_GRPC_PORT",
            hint="pick a free port (LEOFLOW_GRPC_PORT) or stop what uses it",
        )
    await server.start()
    return server, bound, servicer


async def start_agent_server(
    store: Store,
    redis: RedisStore,
    settings: Settings,
    *,
    host: str,
    port: int,
    tls: AgentTLS | None = None,
    config: AgentServiceConfig | None = None,
    on_change: Callable[[], None] | None = None,
    resolve_dag_file: DagFileResolver | None = None,
) -> grpc.aio.Server:
    """Start the agent service (stop it with ``await server.stop(grace)``); see bind_agent_server."""
    server, _port, _servicer = await bind_agent_server(
        store,
        redis,
        settings,
        host=host,
        port=port,
        tls=tls,
        config=config,
        on_change=on_change,
        resolve_dag_file=resolve_dag_file,
    )
    return server


async def start_local_agent_mode(
    store: Store,
    redis: RedisStore,
    settings: Settings,
    *,
    resolve_worker: Callable[[str, DagSpec], Awaitable[tuple[Path, str]]],
    on_change: Callable[[], None] | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    work_root: Path | None = None,
    heartbeat_interval_seconds: float = 5.0,
) -> tuple[grpc.aio.Server, AgentExecutor]:
    """The "agent" executor mode on one host: the service on loopback plus an AgentExecutor.

    ``resolve_worker`` is the scheduler's (tenant, spec) -> (dag file, python) resolver; the
    service sends that DAG file, the executor runs each try's ``leoflow agent`` against it.
    Hand the executor to the Scheduler and stop the server after the scheduler stops.
    """
    from leoflow.executors.agent import AgentExecutor

    async def dag_file(tenant: str, spec: DagSpec) -> str:
        return str((await resolve_worker(tenant, spec))[0])

    config = AgentServiceConfig(
        logs_dir=settings.logs_dir,
        heartbeat_interval_seconds=heartbeat_interval_seconds,
        allow_insecure_secrets=is_loopback(host),
        resolve_dag_file=dag_file,
        on_change=on_change,
    )
    server, bound, servicer = await bind_agent_server(
        store, redis, settings, host=host, port=port, config=config
    )
    executor = AgentExecutor(address=f"{host}:{bound}", issuer=servicer.issuer, work_root=work_root)
    return server, executor
