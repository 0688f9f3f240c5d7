"""`leoflow server`: the control plane's HTTP API (Pro), configured from the environment."""

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
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "info",
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Server processes (each with its own pool).")
    ] = 1,
) -> None:
    """Serve the control plane (needs LEOFLOW_DATABASE_URL and LEOFLOW_AUTH_JWT_SECRET)."""
    import uvicorn

    from leoflow.server.app import create_app

    settings = Settings.from_env(host=host, port=port)
    common = {"host": settings.host, "port": settings.port, "log_level": log_level}
    if workers > 1:
        # Several processes need an import string; each worker builds its app from the env.
        uvicorn.run("leoflow.server.app:app_from_env", factory=True, workers=workers, **common)
        return
    uvicorn.run(create_app(settings), **common)


def register(app: typer.Typer) -> None:
    """Attach `leoflow server`."""
    app.command("server")(server)
