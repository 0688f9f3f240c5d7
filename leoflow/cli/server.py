"""`leoflow server`: the Pro control plane (API, scheduler, executor, agent service, metrics)."""

from __future__ import annotations

from typing import Annotated

import typer

from leoflow.settings import Settings


def server(
    host: Annotated[
        str | None, typer.Option("--host", help="Bind address (default LEOFLOW_HOST or 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", help="HTTP port (default LEOFLOW_PORT or 8080).")
    ] = None,
    executor: Annotated[
        str | None,
        typer.Option(
            "--executor",
            help="kubernetes (a pod per task), process (a fresh local process) or agent "
            "(the pod entrypoint as a local process). Default LEOFLOW_EXECUTOR or kubernetes.",
        ),
    ] = None,
    api_only: Annotated[
        bool,
        typer.Option(
            "--api-only", help="Serve only the HTTP API (no scheduler, executor or agent service)."
        ),
    ] = False,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "info",
    workers: Annotated[
        int,
        typer.Option("--workers", min=1, help="API processes (implies --api-only when above 1)."),
    ] = 1,
) -> None:
    """Serve the control plane (needs LEOFLOW_DATABASE_URL, LEOFLOW_REDIS_URL and
    LEOFLOW_AUTH_JWT_SECRET)."""
    import os

    import uvicorn

    settings = Settings.from_env(host=host, port=port)
    common = {"host": settings.host, "port": settings.port, "log_level": log_level}
    if workers > 1:
        # Several processes need an import string; each worker builds its app from the env.
        uvicorn.run("leoflow.server.app:app_from_env", factory=True, workers=workers, **common)
        return
    if api_only:
        from leoflow.server.app import create_app

        uvicorn.run(create_app(settings), **common)
        return
    import asyncio

    from leoflow.server.pro import ControlPlane

    name = executor or os.environ.get("LEOFLOW_EXECUTOR") or "kubernetes"
    plane = ControlPlane(settings, executor_name=name, log_level=log_level)
    asyncio.run(plane.run())


def register(app: typer.Typer) -> None:
    """Attach `leoflow server`."""
    app.command("server")(server)
