"""The connection types offered by the UI's connection form (``/ui/connections/hook_meta``).

Airflow builds this list from the installed providers' hooks. The control plane imports no
provider, so the list is fixed: the types Leoflow's tasks and the common providers use, each
with the relabelled or hidden standard fields Airflow's hook declares (``get_ui_field_behaviour``).
"""

from __future__ import annotations

from typing import Any

_FIELDS = ("description", "url_schema", "host", "port", "login", "password")


def _field(hidden: bool = False, title: str | None = None, placeholder: str | None = None) -> Any:
    return {"hidden": hidden, "title": title, "placeholder": placeholder}


def _hook(
    conn_type: str,
    hook_name: str,
    hook_class: str,
    default_conn: str | None,
    *,
    hidden: tuple[str, ...] = (),
    titles: dict[str, str] | None = None,
    placeholders: dict[str, str] | None = None,
) -> dict[str, Any]:
    titles, placeholders = titles or {}, placeholders or {}
    return {
        "connection_type": conn_type,
        "hook_class_name": hook_class,
        "default_conn_name": default_conn,
        "hook_name": hook_name,
        "standard_fields": {
            name: _field(name in hidden, titles.get(name), placeholders.get(name))
            for name in _FIELDS
        },
        "extra_fields": {},
    }


_DB = {"url_schema": "Database"}

HOOK_META: list[dict[str, Any]] = [
    _hook("aws", "Amazon Web Services", "airflow.providers.amazon.aws.hooks.base_aws.AwsBaseHook", "aws_default", hidden=("host", "url_schema", "port"), titles={"login": "AWS Access Key ID", "password": "AWS Secret Access Key"}),
    _hook("email", "Email", "airflow.providers.smtp.hooks.smtp.SmtpHook", "smtp_default", titles={"login": "Username"}),
    _hook("fs", "File (path)", "airflow.providers.standard.hooks.filesystem.FSHook", "fs_default", hidden=("host", "url_schema", "port", "login", "password"), placeholders={"description": "Set the path in extra: {\"path\": \"/data\"}"}),
    _hook("ftp", "FTP", "airflow.providers.ftp.hooks.ftp.FTPHook", "ftp_default"),
    _hook("generic", "Generic", "airflow.hooks.base.BaseHook", None),
    _hook("google_cloud_platform", "Google Cloud", "airflow.providers.google.common.hooks.base_google.GoogleBaseHook", "google_cloud_default", hidden=("host", "url_schema", "port", "login", "password")),
    _hook("http", "HTTP", "airflow.providers.http.hooks.http.HttpHook", "http_default", titles={"url_schema": "Schema"}, placeholders={"host": "api.example.com", "url_schema": "https"}),
    _hook("mysql", "MySQL", "airflow.providers.mysql.hooks.mysql.MySqlHook", "mysql_default", titles=_DB),
    _hook("postgres", "Postgres", "airflow.providers.postgres.hooks.postgres.PostgresHook", "postgres_default", titles=_DB, placeholders={"port": "5432"}),
    _hook("redis", "Redis", "airflow.providers.redis.hooks.redis.RedisHook", "redis_default", hidden=("url_schema",), placeholders={"port": "6379"}),
    _hook("sftp", "SFTP", "airflow.providers.sftp.hooks.sftp.SFTPHook", "sftp_default", hidden=("url_schema",)),
    _hook("slack", "Slack API", "airflow.providers.slack.hooks.slack.SlackHook", "slack_api_default", hidden=("host", "url_schema", "port", "login"), titles={"password": "Slack API Token"}),
    _hook("smtp", "SMTP", "airflow.providers.smtp.hooks.smtp.SmtpHook", "smtp_default", hidden=("url_schema",), placeholders={"port": "587"}),
    _hook("sqlite", "Sqlite", "airflow.providers.sqlite.hooks.sqlite.SqliteHook", "sqlite_default", hidden=("port", "login", "password"), titles={"host": "Path to the database file"}),
    _hook("ssh", "SSH", "airflow.providers.ssh.hooks.ssh.SSHHook", "ssh_default", hidden=("url_schema",), placeholders={"port": "22"}),
]  # fmt: skip
"""Every connection type the form offers, sorted by type."""
