"""One Settings object, read from the environment once and passed down (never a global)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


def _path(env: Mapping[str, str], key: str, default: str) -> Path:
    return Path(env.get(key) or default).expanduser()


@dataclass(frozen=True)
class Settings:
    """Everything configurable about a Leoflow process (env ``LEOFLOW_*``; flags win over env)."""

    home: Path = field(default_factory=lambda: Path("~/.leoflow").expanduser())
    workspace: Path = field(default_factory=lambda: Path("~/leoflow").expanduser())
    server: str = "http://127.0.0.1:8088"
    token: str | None = None
    database_url: str | None = None
    redis_url: str | None = None
    jwt_secret: str | None = None
    secret_key: str | None = None
    bootstrap_username: str = "admin"
    bootstrap_password: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    grpc_port: int = 9091
    metrics_port: int = 9090
    executor: str = "process"
    token_ttl_seconds: int = 12 * 3600
    login_rate_limit_per_minute: int = 10
    xcom_ttl_seconds: int = 7 * 24 * 3600

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from ``env`` (default ``os.environ``); keyword overrides win."""
        env = os.environ if env is None else env
        values: dict[str, object] = {
            "home": _path(env, "LEOFLOW_HOME", "~/.leoflow"),
            "workspace": _path(env, "LEOFLOW_WORKSPACE", "~/leoflow"),
            "server": env.get("LEOFLOW_SERVER") or "http://127.0.0.1:8088",
            "token": env.get("LEOFLOW_TOKEN") or None,
            "database_url": env.get("LEOFLOW_DATABASE_URL") or None,
            "redis_url": env.get("LEOFLOW_REDIS_URL") or None,
            "jwt_secret": env.get("LEOFLOW_AUTH_JWT_SECRET") or None,
            "secret_key": env.get("LEOFLOW_SECRET_KEY") or None,
            "bootstrap_username": env.get("LEOFLOW_BOOTSTRAP_USERNAME") or "admin",
            "bootstrap_password": env.get("LEOFLOW_BOOTSTRAP_PASSWORD") or None,
            "host": env.get("LEOFLOW_HOST") or "127.0.0.1",
            "port": int(env.get("LEOFLOW_PORT") or 8080),
            "grpc_port": int(env.get("LEOFLOW_GRPC_PORT") or 9091),
            "metrics_port": int(env.get("LEOFLOW_METRICS_PORT") or 9090),
            "executor": env.get("LEOFLOW_EXECUTOR") or "process",
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    @property
    def venvs_dir(self) -> Path:
        """Per-DAG virtualenvs live here."""
        return self.home / "venvs"

    @property
    def ui_dir(self) -> Path:
        """Cache of the Airflow UI bundle."""
        return self.home / "ui"

    @property
    def logs_dir(self) -> Path:
        """Task logs, one JSON-lines file per try."""
        return self.home / "logs"
