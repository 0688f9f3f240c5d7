"""The dag.json contract: what ``leoflow compile`` writes and what the control plane schedules.

A compiled DAG is an immutable, self-describing JSON document. The control plane never imports
user code: everything it needs to schedule, dispatch and display a DAG is in here.

Format rules:

* ``schema_version`` names this format. Readers refuse a version they do not know.
* Every field is always written (no omitted defaults), so a document is explicit and diffable.
* Canonical form: keys sorted, UTF-8, ``tasks`` sorted by ``task_id``, ``upstream`` sorted,
  ``tags`` sorted and unique. The file on disk is the canonical form indented by two spaces and
  followed by a newline, so the same inputs always give byte-identical output.
* ``content_hash`` is the SHA-256 of the compact canonical JSON of the whole document with
  ``version``, ``content_hash`` and ``runtime.image`` left out. Two compiles of the same DAG hash alike; the control
  plane deduplicates DAG versions by this hash. ``version`` is a label: ``--dag-version`` when
  given, else ``h`` plus the first twelve hex digits of the hash.
* Task arguments come in three maps, keyed by the callable's parameter name:
  ``call_args`` (JSON literals), ``xcom_inputs`` (one upstream's output) and ``fan_ins`` (a list,
  tuple or dict whose slots are upstream outputs or literals, delivered in declaration order with
  ``None`` where an upstream produced nothing).
* Names follow Airflow: dag_id, task_id, trigger_rule, retries, retry_delay, pool, params.

The JSON Schema in ``docs/schemas/dag.schema.json`` is generated from these models
(``python -m leoflow.spec``) and a test fails when the two drift.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from leoflow.errors import SpecError

SCHEMA_VERSION = "1.0"
XCOM_MAX_BYTES = 256 * 1024
"""The largest XCom value Leoflow stores (bytes of its JSON encoding)."""

ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,249}$"
"""Airflow's key rule: letters, digits, ``_``, ``.`` and ``-``, at most 250 characters."""
_ID_RE = re.compile(ID_PATTERN)

JsonValue = Any


class TriggerRule(StrEnum):
    """Airflow 3's trigger rules, with Airflow's names and meanings."""

    ALL_SUCCESS = "all_success"
    ALL_FAILED = "all_failed"
    ALL_DONE = "all_done"
    ALL_DONE_MIN_ONE_SUCCESS = "all_done_min_one_success"
    ALL_DONE_SETUP_SUCCESS = "all_done_setup_success"
    ALL_SKIPPED = "all_skipped"
    ONE_SUCCESS = "one_success"
    ONE_FAILED = "one_failed"
    ONE_DONE = "one_done"
    NONE_FAILED = "none_failed"
    NONE_FAILED_MIN_ONE_SUCCESS = "none_failed_min_one_success"
    NONE_SKIPPED = "none_skipped"
    ALWAYS = "always"


class TaskType(StrEnum):
    """How a task runs: a Python callable, a bash command, an HTTP call, or nothing."""

    PYTHON = "python"
    BASH = "bash"
    HTTP = "http"
    EMPTY = "empty"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def is_valid_id(value: str) -> bool:
    """True when ``value`` is a valid dag_id or task_id."""
    return bool(_ID_RE.match(value))


# --------------------------------------------------------------------------------------------
# Schedules
# --------------------------------------------------------------------------------------------


class CronSchedule(_Model):
    """A cron expression or an Airflow preset (``@daily``, ``@hourly``...)."""

    type: Literal["cron"] = "cron"
    expression: str


class DeltaSchedule(_Model):
    """A fixed interval (Airflow's ``timedelta`` schedule)."""

    type: Literal["delta"] = "delta"
    seconds: float = Field(gt=0)


class OnceSchedule(_Model):
    """``@once``: a single run at start_date."""

    type: Literal["once"] = "once"


class ContinuousSchedule(_Model):
    """``@continuous``: a new run as soon as the previous one ends."""

    type: Literal["continuous"] = "continuous"


Schedule = Annotated[
    CronSchedule | DeltaSchedule | OnceSchedule | ContinuousSchedule,
    Field(discriminator="type"),
]


# --------------------------------------------------------------------------------------------
# Task arguments
# --------------------------------------------------------------------------------------------


class XComRef(_Model):
    """The output of an upstream task (its ``return_value`` unless ``key`` says otherwise)."""

    task_id: str
    key: str = "return_value"


class FanInSlot(_Model):
    """One slot of a fan-in: an upstream output (``ref``) or a literal (``value``).

    ``key`` is the dict key when the fan-in is a dict, else None.
    """

    ref: XComRef | None = None
    value: JsonValue = None
    key: str | None = None


class FanIn(_Model):
    """A list, tuple or dict argument assembled from upstream outputs in declaration order."""

    shape: Literal["list", "tuple", "dict"]
    slots: list[FanInSlot]


# --------------------------------------------------------------------------------------------
# Tasks
# --------------------------------------------------------------------------------------------


class HttpRequest(_Model):
    """An HTTP call run inline by the control plane (Airflow's HttpOperator)."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    http_conn_id: str | None = None
    endpoint: str = ""
    headers: dict[str, str] = Field(default_factory=dict)
    data: JsonValue = None
    timeout_seconds: float = Field(default=60, gt=0)
    success_status_codes: list[int] = Field(default_factory=lambda: [200, 201, 202, 204])


class ResourceQuantities(_Model):
    """Kubernetes-style quantities (``cpu: "500m"``, ``memory: "1Gi"``)."""

    cpu: str | None = None
    memory: str | None = None


class Resources(_Model):
    """Requests and limits for the task's worker (honoured by the Kubernetes executor)."""

    requests: ResourceQuantities = Field(default_factory=ResourceQuantities)
    limits: ResourceQuantities = Field(default_factory=ResourceQuantities)


class Toleration(_Model):
    """A Kubernetes toleration."""

    key: str | None = None
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = None
    effect: str | None = None


class Placement(_Model):
    """Where a task's pod may run (Kubernetes executor only)."""

    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    service_account: str | None = None


class TaskSpec(_Model):
    """One task of a compiled DAG."""

    task_id: str
    type: TaskType
    operator: str = Field(description="The authoring class, e.g. PythonOperator or BashOperator.")
    callable: str | None = Field(
        default=None, description="`module:qualname` of a python task, relative to the project."
    )
    bash_command: str | None = None
    http: HttpRequest | None = None
    call_args: dict[str, JsonValue] = Field(default_factory=dict)
    xcom_inputs: dict[str, XComRef] = Field(default_factory=dict)
    fan_ins: dict[str, FanIn] = Field(default_factory=dict)
    upstream: list[str] = Field(default_factory=list)
    trigger_rule: TriggerRule = TriggerRule.ALL_SUCCESS
    retries: int = Field(default=0, ge=0, le=1000)
    retry_delay_seconds: float = Field(default=300, ge=0)
    retry_exponential_backoff: bool = False
    max_retry_delay_seconds: float | None = Field(default=None, gt=0)
    execution_timeout_seconds: float | None = Field(default=None, gt=0)
    pool: str = "default_pool"
    pool_slots: int = Field(default=1, ge=1)
    priority_weight: int = 1
    task_group: str | None = None
    doc_md: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    resources: Resources | None = None
    placement: Placement | None = None
    output_schema: dict[str, JsonValue] | None = Field(
        default=None, description="JSON Schema the task's return value must satisfy."
    )
    line: int | None = Field(default=None, description="Line of dag.py that declared the task.")

    @field_validator("task_id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not is_valid_id(value):
            raise ValueError(f"invalid task_id {value!r}: use letters, digits, '_', '.' or '-'")
        return value

    @model_validator(mode="after")
    def _check_type_fields(self) -> TaskSpec:
        if self.type is TaskType.PYTHON and not self.callable:
            raise ValueError(f"python task {self.task_id!r} needs a callable")
        if self.type is TaskType.BASH and self.bash_command is None and not self.callable:
            # @task.bash tasks have a callable that returns the command at run time.
            raise ValueError(f"bash task {self.task_id!r} needs a bash_command or a callable")
        if self.type is TaskType.HTTP and self.http is None:
            raise ValueError(f"http task {self.task_id!r} needs an http request")
        overlap = (set(self.call_args) & set(self.xcom_inputs)) | (
            set(self.fan_ins) & (set(self.call_args) | set(self.xcom_inputs))
        )
        if overlap:
            raise ValueError(f"task {self.task_id!r}: argument(s) {sorted(overlap)} bound twice")
        return self

    def referenced_task_ids(self) -> set[str]:
        """Every task whose output this task reads."""
        ids = {ref.task_id for ref in self.xcom_inputs.values()}
        for fan_in in self.fan_ins.values():
            ids.update(slot.ref.task_id for slot in fan_in.slots if slot.ref is not None)
        return ids


class ParamSpec(_Model):
    """A DAG param (Airflow's ``Param``): a default plus a JSON Schema for trigger-time conf."""

    default: JsonValue = None
    has_default: bool = True
    schema_: dict[str, JsonValue] = Field(default_factory=dict, alias="schema")
    description: str | None = None
    title: str | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Runtime(_Model):
    """What a worker needs to run the DAG's code."""

    python_version: str = "3.11"
    dependencies: list[str] = Field(default_factory=list)
    image: str | None = Field(default=None, description="The DAG image, digest-pinned once pushed.")


class DagSpec(_Model):
    """A compiled DAG: the contents of dag.json."""

    schema_version: Literal["1.0"] = SCHEMA_VERSION
    dag_id: str
    version: str = ""
    content_hash: str = ""
    description: str | None = None
    doc_md: str | None = None
    owner: str = "airflow"
    tags: list[str] = Field(default_factory=list)
    schedule: Schedule | None = None
    timezone: str = "UTC"
    start_date: datetime | None = None
    end_date: datetime | None = None
    catchup: bool = False
    max_active_runs: int = Field(default=16, ge=1)
    max_active_tasks: int = Field(default=16, ge=1)
    dagrun_timeout_seconds: float | None = Field(default=None, gt=0)
    is_paused_upon_creation: bool | None = None
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    runtime: Runtime = Field(default_factory=Runtime)
    source: str = Field(default="", description="The text of dag.py (or the YAML declaration).")
    source_file: str = "dag.py"
    tasks: list[TaskSpec] = Field(min_length=1)

    @field_validator("dag_id")
    @classmethod
    def _check_dag_id(cls, value: str) -> str:
        if not is_valid_id(value):
            raise ValueError(f"invalid dag_id {value!r}: use letters, digits, '_', '.' or '-'")
        return value

    @field_validator("start_date", "end_date")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("dates must carry a timezone (they are stored in UTC)")
        return value

    @model_validator(mode="after")
    def _check_graph(self) -> DagSpec:
        ids = [t.task_id for t in self.tasks]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate task ids: {dupes}")
        known = set(ids)
        for t in self.tasks:
            missing = (set(t.upstream) | t.referenced_task_ids()) - known
            if missing:
                raise ValueError(f"task {t.task_id!r} depends on unknown task(s) {sorted(missing)}")
            unlinked = t.referenced_task_ids() - set(t.upstream)
            if unlinked:
                raise ValueError(
                    f"task {t.task_id!r} reads output of {sorted(unlinked)} not listed upstream"
                )
        cycle = find_cycle({t.task_id: t.upstream for t in self.tasks})
        if cycle:
            raise ValueError("cycle: " + " -> ".join(cycle))
        return self

    # -- convenience -------------------------------------------------------------------------

    def task(self, task_id: str) -> TaskSpec:
        """The task with this id (KeyError when absent)."""
        for t in self.tasks:
            if t.task_id == task_id:
                return t
        raise KeyError(task_id)

    def downstream(self) -> dict[str, list[str]]:
        """task_id -> sorted ids of its direct downstream tasks."""
        out: dict[str, list[str]] = {t.task_id: [] for t in self.tasks}
        for t in self.tasks:
            for up in t.upstream:
                out[up].append(t.task_id)
        return {k: sorted(v) for k, v in out.items()}

    def topological_order(self) -> list[str]:
        """Task ids, upstream before downstream, ties broken alphabetically."""
        return topological_order({t.task_id: t.upstream for t in self.tasks})


# --------------------------------------------------------------------------------------------
# Graph helpers (pure)
# --------------------------------------------------------------------------------------------


def find_cycle(upstream: dict[str, list[str]]) -> list[str] | None:
    """A cycle as a list of ids (first == last), or None when the graph is acyclic."""
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(upstream, white)
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        color[node] = grey
        stack.append(node)
        for nxt in sorted(upstream.get(node, [])):
            if nxt not in color:
                continue
            if color[nxt] == grey:
                cycle = [*stack[stack.index(nxt) :], nxt]
                # Edges point upstream; report the cycle in >> order.
                return list(reversed(cycle))
            if color[nxt] == white:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        color[node] = black
        return None

    for node in sorted(upstream):
        if color[node] == white:
            found = visit(node)
            if found:
                return found
    return None


def topological_order(upstream: dict[str, list[str]]) -> list[str]:
    """Kahn's algorithm over ``task_id -> upstream ids``; ties broken alphabetically."""
    import heapq

    remaining = {k: set(v) & set(upstream) for k, v in upstream.items()}
    downstream: dict[str, list[str]] = {k: [] for k in upstream}
    for node, ups in remaining.items():
        for up in ups:
            downstream[up].append(node)
    ready = [k for k, v in remaining.items() if not v]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        node = heapq.heappop(ready)
        order.append(node)
        for nxt in downstream[node]:
            remaining[nxt].discard(node)
            if not remaining[nxt]:
                heapq.heappush(ready, nxt)
    if len(order) != len(upstream):
        raise SpecError("the task graph has a cycle")
    return order


# --------------------------------------------------------------------------------------------
# Canonical JSON, hashing, loading
# --------------------------------------------------------------------------------------------


def _normalized(spec: DagSpec) -> DagSpec:
    tasks = sorted(
        (t.model_copy(update={"upstream": sorted(set(t.upstream))}) for t in spec.tasks),
        key=lambda t: t.task_id,
    )
    return spec.model_copy(update={"tasks": tasks, "tags": sorted(set(spec.tags))})


def _as_json_obj(spec: DagSpec) -> dict[str, Any]:
    return spec.model_dump(mode="json", by_alias=True)


def compute_hash(spec: DagSpec) -> str:
    """SHA-256 hex of the canonical document without ``version``, ``content_hash`` and the image.

    The image is a build artefact of the content (its ``leoflow.version`` label is this hash),
    so rebuilding or re-pushing the same code never makes a new DAG version.
    """
    body = _as_json_obj(_normalized(spec))
    body.pop("version", None)
    body.pop("content_hash", None)
    body.get("runtime", {}).pop("image", None)
    blob = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def finalize(spec: DagSpec, version: str | None = None) -> DagSpec:
    """Normalize ordering and stamp ``content_hash`` and ``version``."""
    spec = _normalized(spec)
    digest = compute_hash(spec)
    return spec.model_copy(update={"content_hash": digest, "version": version or f"h{digest[:12]}"})


def dumps(spec: DagSpec) -> str:
    """The canonical file form: sorted keys, two-space indent, trailing newline."""
    obj = _as_json_obj(_normalized(spec))
    return json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def loads(text: str | bytes, *, source: str = "dag.json") -> DagSpec:
    """Parse and validate a dag.json document; errors name the offending field."""
    from pydantic import ValidationError

    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"not valid JSON: {exc.msg}", path=source, line=exc.lineno) from exc
    if isinstance(raw, dict) and raw.get("schema_version") not in (None, SCHEMA_VERSION):
        raise SpecError(
            f"unknown schema_version {raw.get('schema_version')!r}; this Leoflow reads "
            f"{SCHEMA_VERSION!r}",
            path=source,
            field="schema_version",
            hint="recompile the DAG with this version of leoflow",
        )
    try:
        spec = DagSpec.model_validate(raw)
    except ValidationError as exc:
        raise spec_error_from_validation(exc, source) from exc
    if spec.content_hash and spec.content_hash != compute_hash(spec):
        raise SpecError(
            "content_hash does not match the document (was it edited by hand?)",
            path=source,
            field="content_hash",
            hint="recompile with `leoflow compile` instead of editing dag.json",
        )
    return spec


def spec_error_from_validation(exc: Any, source: str) -> SpecError:
    """Turn a pydantic ValidationError into a SpecError naming the first bad field."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return SpecError(err["msg"] + more, path=source, field=loc or None)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of dag.json, generated from the models."""
    schema = DagSpec.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://leoflow.dev/schemas/dag.schema.json"
    return schema


if __name__ == "__main__":  # pragma: no cover - used by `make schemas`
    print(json.dumps(json_schema(), indent=2, sort_keys=True))
