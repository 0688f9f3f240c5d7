"""The leoflow.yaml contract: one page that says how a DAG project is built and run.

A project is a folder holding ``leoflow.yaml`` and either ``dag.py`` (Airflow-style Python) or a
declarative ``dag:`` block (in leoflow.yaml, or in a separate ``dag.yaml``). Unknown keys are
errors, and every error names the file, the line and the key, with a hint. The JSON Schema in
``docs/schemas/leoflow.schema.json`` is generated from these models and a test fails on drift.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from leoflow.errors import ProjectError
from leoflow.spec import (
    JsonValue,
    Placement,
    Resources,
    TriggerRule,
    is_valid_id,
)

PROJECT_FILE = "leoflow.yaml"
DAG_YAML_FILE = "dag.yaml"
SUPPORTED_PYTHONS = ("3.10", "3.11", "3.12", "3.13", "3.14")
DEFAULT_EXCLUDE = (
    ".git",
    "__pycache__",
    "*.pyc",
    ".venv",
    "venv",
    "dag.json",
    ".leoflow",
    "Dockerfile.leoflow",
)

_PIP_SPEC = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*(\[[^\]]*\])?\s*([<>=!~]=?.*|@.+)?(;.*)?$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskOverride(_Model):
    """Per-task settings that replace what dag.py declared (``tasks.<task_id>`` in the YAML)."""

    retries: int | None = Field(default=None, ge=0, le=1000)
    retry_delay_seconds: float | None = Field(default=None, ge=0)
    retry_exponential_backoff: bool | None = None
    max_retry_delay_seconds: float | None = Field(default=None, gt=0)
    execution_timeout_seconds: float | None = Field(default=None, gt=0)
    trigger_rule: TriggerRule | None = None
    pool: str | None = None
    pool_slots: int | None = Field(default=None, ge=1)
    priority_weight: int | None = None
    env: dict[str, str] = Field(default_factory=dict)
    resources: Resources | None = None
    placement: Placement | None = None
    output_schema: dict[str, JsonValue] | None = None


class Defaults(TaskOverride):
    """Settings applied to every task unless dag.py or ``tasks.<task_id>`` set them."""


class Registry(_Model):
    """Where ``compile --push`` sends the DAG image."""

    image: str | None = Field(default=None, description="Image name without tag, e.g. reg/etl.")
    tag_strategy: Literal["version", "content_hash", "git_sha", "fixed"] = "content_hash"
    tag: str | None = Field(default=None, description="The tag when tag_strategy is fixed.")


# -- declarative (YAML) DAGs ------------------------------------------------------------------


class YamlTask(_Model):
    """One task of a declarative DAG."""

    type: Literal["python", "bash", "http", "empty"]
    callable: str | None = Field(default=None, description="`module:function`, for python tasks.")
    bash_command: str | None = None
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    http_conn_id: str | None = None
    endpoint: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    data: JsonValue = None
    args: dict[str, JsonValue] = Field(default_factory=dict, description="JSON literal arguments.")
    inputs: dict[str, str | list[str]] = Field(
        default_factory=dict,
        description="param -> upstream task id (its output), or a list of ids (a fan-in).",
    )
    upstream: list[str] = Field(default_factory=list)
    trigger_rule: TriggerRule = TriggerRule.ALL_SUCCESS
    retries: int | None = Field(default=None, ge=0, le=1000)
    retry_delay_seconds: float | None = Field(default=None, ge=0)
    retry_exponential_backoff: bool | None = None
    max_retry_delay_seconds: float | None = Field(default=None, gt=0)
    execution_timeout_seconds: float | None = Field(default=None, gt=0)
    pool: str | None = None
    doc_md: str | None = None


class YamlParam(_Model):
    """A DAG param: a default and its JSON Schema keywords."""

    default: JsonValue = None
    type: str | list[str] | None = None
    description: str | None = None
    title: str | None = None
    enum: list[JsonValue] | None = None
    minimum: float | None = None
    maximum: float | None = None


class YamlDag(_Model):
    """A DAG declared in YAML instead of dag.py."""

    schedule: str | None = None
    schedule_interval_seconds: float | None = Field(default=None, gt=0)
    timezone: str = "UTC"
    start_date: datetime | date | None = None
    end_date: datetime | date | None = None
    catchup: bool = False
    max_active_runs: int = Field(default=16, ge=1)
    max_active_tasks: int = Field(default=16, ge=1)
    doc_md: str | None = None
    params: dict[str, YamlParam] = Field(default_factory=dict)
    tasks: dict[str, YamlTask] = Field(min_length=1)


class Project(_Model):
    """The parsed leoflow.yaml."""

    schema_version: Literal["1.0"] = "1.0"
    dag_id: str | None = None
    description: str | None = None
    owner: str | None = None
    tags: list[str] | None = None
    python_version: str = "3.11"
    dependencies: list[str] = Field(default_factory=list)
    system_packages: list[str] = Field(default_factory=list)
    base_image: str | None = None
    dockerfile: str | None = Field(default=None, description="The project's own Dockerfile.")
    dag_file: str = "dag.py"
    include: list[str] = Field(default_factory=lambda: ["."])
    exclude: list[str] = Field(default_factory=lambda: list(DEFAULT_EXCLUDE))
    env: dict[str, str] = Field(default_factory=dict)
    registry: Registry = Field(default_factory=Registry)
    defaults: Defaults = Field(default_factory=Defaults)
    tasks: dict[str, TaskOverride] = Field(default_factory=dict)
    dag: YamlDag | None = None

    @field_validator("dag_id")
    @classmethod
    def _dag_id(cls, value: str | None) -> str | None:
        if value is not None and not is_valid_id(value):
            raise ValueError(f"invalid dag_id {value!r}: use letters, digits, '_', '.' or '-'")
        return value

    @field_validator("python_version", mode="before")
    @classmethod
    def _python_version(cls, value: Any) -> str:
        text = str(value)
        if text not in SUPPORTED_PYTHONS:
            raise ValueError(
                f"unknown python_version {text!r}; supported: {', '.join(SUPPORTED_PYTHONS)}"
                ' (quote it in YAML: "3.11")'
            )
        return text

    @field_validator("dependencies")
    @classmethod
    def _deps(cls, value: list[str]) -> list[str]:
        for dep in value:
            if not _PIP_SPEC.match(dep.strip()):
                raise ValueError(f"{dep!r} is not a pip requirement (e.g. 'pandas==2.2.2')")
        return value

    @field_validator("system_packages")
    @classmethod
    def _apt(cls, value: list[str]) -> list[str]:
        for pkg in value:
            if not re.match(r"^[a-z0-9][a-z0-9+.\-]*(=[A-Za-z0-9.+:~\-]+)?$", pkg):
                raise ValueError(f"{pkg!r} is not a Debian package name")
        return value


class LoadedProject(BaseModel):
    """A project folder with its parsed leoflow.yaml and where each key sits in the file."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    root: Path
    config: Project
    config_path: Path | None
    lines: dict[tuple[str, ...], int] = Field(default_factory=dict)

    @property
    def dag_path(self) -> Path:
        """The dag.py (or configured dag_file) of the project."""
        return self.root / self.config.dag_file

    def line_of(self, *path: str) -> int | None:
        """The line of a key in leoflow.yaml (or of its closest enclosing key)."""
        key = tuple(path)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return None


# -- loading ----------------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate keys (YAML allows them; they are always a mistake)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first on line {seen[key]})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _key_lines(node: yaml.Node, prefix: tuple[str, ...], out: dict[tuple[str, ...], int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = (*prefix, str(key_node.value))
            out[path] = key_node.start_mark.line + 1
            _key_lines(value_node, path, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            path = (*prefix, str(i))
            out[path] = item.start_mark.line + 1
            _key_lines(item, path, out)


def parse_yaml(text: str, path: str) -> tuple[Any, dict[tuple[str, ...], int]]:
    """Parse YAML text; return the data and a map of key path -> line number."""
    try:
        node = yaml.compose(text, Loader=_UniqueKeyLoader)
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ProjectError(
            f"not valid YAML: {exc.problem or exc.context}",
            path=path,
            line=mark.line + 1 if mark else None,
            hint="check the indentation and quoting on that line",
        ) from exc
    lines: dict[tuple[str, ...], int] = {}
    if node is not None:
        _key_lines(node, (), lines)
    return data, lines


def _validation_error(
    exc: ValidationError, path: str, lines: dict[tuple[str, ...], int]
) -> ProjectError:
    err = exc.errors()[0]
    loc = tuple(str(p) for p in err["loc"])
    line = None
    probe = loc
    while probe:
        if probe in lines:
            line = lines[probe]
            break
        probe = probe[:-1]
    field = ".".join(loc) or None
    msg = err["msg"]
    hint = None
    if err["type"] == "extra_forbidden":
        parent = loc[:-1]
        msg = f"unknown key {loc[-1]!r}"
        hint = _known_keys_hint(parent)
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if exc.error_count() > 1:
        msg += f" (and {exc.error_count() - 1} more problem(s))"
    return ProjectError(msg, path=path, line=line, field=field, hint=hint)


def _known_keys_hint(parent: tuple[str, ...]) -> str | None:
    model: type[BaseModel] | None = Project
    for part in parent:
        if model is None:
            return None
        field = model.model_fields.get(part)
        if field is None:
            # A map key (a task id): step into the map's value model.
            field_model = _MAP_VALUE_MODELS.get(model)
            model = field_model
            continue
        model = _model_of(field.annotation)
    if model is None:
        return None
    return "known keys here: " + ", ".join(sorted(model.model_fields))


def _model_of(annotation: Any) -> type[BaseModel] | None:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


_MAP_VALUE_MODELS: dict[type[BaseModel], type[BaseModel]] = {
    Project: TaskOverride,
    YamlDag: YamlTask,
}


def load_project(root: str | Path) -> LoadedProject:
    """Read and validate ``<root>/leoflow.yaml`` (and ``dag.yaml`` when present).

    A project without leoflow.yaml is allowed when it has a dag.py: every setting takes its
    default. Raises ProjectError naming file, line and key.
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise ProjectError(
            "no such project directory", path=str(root), hint="pass the folder holding dag.py"
        )
    cfg_path = root / PROJECT_FILE
    data: Any = {}
    lines: dict[tuple[str, ...], int] = {}
    shown = _display(cfg_path)
    if cfg_path.exists():
        data, lines = parse_yaml(cfg_path.read_text(encoding="utf-8"), shown)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ProjectError(
                "leoflow.yaml must be a mapping of keys (dag_id: ..., dependencies: ...)",
                path=shown,
                line=1,
            )
    dag_yaml = root / DAG_YAML_FILE
    if dag_yaml.exists():
        if "dag" in data:
            raise ProjectError(
                "the DAG is declared twice: in leoflow.yaml (dag:) and in dag.yaml",
                path=shown,
                line=lines.get(("dag",)),
                hint="keep one of them",
            )
        ddata, dlines = parse_yaml(dag_yaml.read_text(encoding="utf-8"), _display(dag_yaml))
        if not isinstance(ddata, dict):
            raise ProjectError("dag.yaml must be a mapping", path=_display(dag_yaml), line=1)
        data = {**data, "dag": ddata}
        try:
            YamlDag.model_validate(ddata)
        except ValidationError as exc:
            raise _validation_error(exc, _display(dag_yaml), dlines) from exc
    try:
        config = Project.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc, shown, lines) from exc
    if config.dag is None and not (root / config.dag_file).exists():
        raise ProjectError(
            f"no {config.dag_file} in the project",
            path=_display(root / config.dag_file),
            hint="write a dag.py, declare the DAG under `dag:` in leoflow.yaml, "
            "or run `leoflow init NAME` for a starter project",
        )
    return LoadedProject(
        root=root, config=config, config_path=cfg_path if cfg_path.exists() else None, lines=lines
    )


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of leoflow.yaml, generated from the models."""
    schema = Project.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://leoflow.dev/schemas/leoflow.schema.json"
    return schema
