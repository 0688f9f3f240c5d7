"""The store's public contract: domain types, states, and the method signatures of ``Store``.

Everything above the store (the HTTP API, the scheduler, the CLI) imports its types from here and
codes against ``StoreAPI``. ``leoflow.store.Store`` implements it; a test checks that every method
below exists on ``Store`` with the same signature, so this file cannot silently drift. The domain
types live in ``leoflow/store/models.py`` (to keep this file short) and are re-exported here:
import them from this module.

Conventions:

* Every business object belongs to a tenant. Methods that address objects by their names take
  the tenant's *name* first (``"default"`` unless multi-tenancy is used); methods used by the
  scheduler and the agent address rows by their internal ids (``DagRun.id``, ``TaskInstance.id``)
  and are cross-tenant.
* Objects are frozen dataclasses; states are ``StrEnum`` members with Airflow's strings. A task
  instance with "no status" has ``state is None`` (stored as SQL NULL), as in Airflow.
* Errors: a missing object raises ``leoflow.errors.NotFound``; a duplicate or a lost race that the
  caller cannot ignore raises ``Conflict``; the database being unreachable raises
  ``Unavailable``; a bad argument (unknown ``order_by`` field, bad pattern...) raises
  ``InvalidArgument`` (a ``LeoflowError`` carrying ``field``: map it to HTTP 400).
* Guarded transitions used by the scheduler and the agent (``transition_ti``, ``transition_tis``,
  ``transition_run``, ``heartbeat_ti``) never raise on a lost race: they return False (or the
  ids that did change). API-level writes (``patch_ti``, ``patch_run``) raise ``Conflict``.
* Lists return ``Page[T]``: ``items`` plus ``total`` (the count before limit/offset).
  ``order_by`` takes Airflow's syntax: a field name, ``-`` prefix for descending; several
  comma-separated fields are allowed. ``dag_id="~"`` or ``run_id="~"`` means "all", as in
  Airflow's URLs.
* Time: methods that stamp times accept ``now`` (default: the process's UTC now) so the
  scheduler and the tests can inject the clock. All datetimes are timezone-aware UTC.
* ``note=UNSET`` means "leave unchanged"; ``note=None`` clears it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Literal, Protocol
from uuid import UUID

from leoflow.settings import Settings
from leoflow.spec import DagSpec
from leoflow.store.models import (
    ALL,
    DEFAULT_POOL,
    DEFAULT_POOL_SLOTS,
    DEFAULT_TENANT,
    FINISHED_TRY_STATES,
    NOTIFY_CHANNEL,
    RUN_TRANSITIONS,
    TERMINAL_RUN_STATES,
    TERMINAL_TI_STATES,
    TI_MANUAL_MARKS,
    TI_TRANSITIONS,
    UNSET,
    AuditEvent,
    BulkAction,
    BulkActionKind,
    BulkActionResult,
    BulkResult,
    Connection,
    Dag,
    DagImportError,
    DagRun,
    DagRunState,
    DagRunType,
    DagSource,
    DagVersion,
    InvalidArgument,
    OnExistence,
    OnNonExistence,
    Page,
    Pool,
    Role,
    TaskInstance,
    TaskInstanceState,
    TaskInstanceTry,
    Tenant,
    TIKey,
    TIState,
    TIStateOrNone,
    Unset,
    User,
    Variable,
    XComEntry,
    XComTooLarge,
    run_sources,
    ti_sources,
)

# --------------------------------------------------------------------------------------------
# The store's methods
# --------------------------------------------------------------------------------------------


class StoreAPI(Protocol):
    """What ``Store`` (and the object ``store.transaction()`` yields) offers."""

    # -- lifecycle (on Store only, not on transaction objects) -----------------------------
    # await Store.connect(dsn, *, settings=None, min_size=1, max_size=10, migrate=False,
    #                     timeout=10.0) -> Store           (Unavailable when unreachable)
    # await store.close(); await store.ping() -> bool; store.pool (the asyncpg pool)
    # await store.listen() -> EventListener  (NOTIFY_CHANNEL wake-ups: await .get(), .close())

    def transaction(self) -> AbstractAsyncContextManager[StoreAPI]:
        """A transaction: every call on the yielded object commits or rolls back together."""
        ...

    # -- tenants and users -----------------------------------------------------------------

    async def create_tenant(self, name: str) -> Tenant:
        """Create a tenant (Conflict when the name exists)."""
        ...

    async def get_tenant(self, name: str) -> Tenant:
        """The tenant with this name (NotFound)."""
        ...

    async def list_tenants(self) -> list[Tenant]:
        """All tenants by name."""
        ...

    async def create_user(
        self,
        tenant: str,
        username: str,
        password: str,
        role: Role = Role.VIEWER,
        *,
        email: str | None = None,
        is_active: bool = True,
    ) -> User:
        """Create a user with an argon2 password hash (Conflict when the username exists)."""
        ...

    async def get_user(self, tenant: str, username: str) -> User:
        """The user (NotFound)."""
        ...

    async def verify_password(self, tenant: str, username: str, password: str) -> User | None:
        """The user when the password matches and the account is active, else None."""
        ...

    async def list_users(self, tenant: str, *, limit: int = 100, offset: int = 0) -> Page[User]:
        """Users of the tenant by username."""
        ...

    async def set_password(self, tenant: str, username: str, password: str) -> None:
        """Replace the user's password (NotFound)."""
        ...

    async def update_user(
        self,
        tenant: str,
        username: str,
        *,
        role: Role | None = None,
        is_active: bool | None = None,
        email: str | None = UNSET,
    ) -> User:
        """Change role, activity or email; None/UNSET leave a field unchanged (NotFound)."""
        ...

    async def delete_user(self, tenant: str, username: str) -> None:
        """Delete the user (NotFound)."""
        ...

    async def bootstrap_admin(
        self, settings: Settings, tenant: str = DEFAULT_TENANT
    ) -> tuple[User, str | None]:
        """Ensure the bootstrap admin exists; returns it and the generated password, if any.

        Uses settings.bootstrap_username/bootstrap_password. An existing user is left as is
        (its password is not reset); the second element is then None.
        """
        ...

    # -- DAGs and versions -----------------------------------------------------------------

    async def register_version(
        self, tenant: str, spec: DagSpec, created_by: str | None = None
    ) -> tuple[DagVersion, bool]:
        """Register a compiled spec; (version, True) when new (201), (existing, False) (200).

        Identical content (same content_hash) reuses the existing version and makes it current
        again. The spec is finalized (hash stamped) when it carries no content_hash.
        """
        ...

    async def get_dag(self, tenant: str, dag_id: str) -> Dag:
        """The DAG (NotFound)."""
        ...

    async def list_dags(
        self,
        tenant: str,
        *,
        dag_id_pattern: str | None = None,
        dag_ids: Collection[str] | None = None,
        tags: Collection[str] | None = None,
        tags_match_mode: Literal["any", "all"] = "any",
        owners: Collection[str] | None = None,
        paused: bool | None = None,
        exclude_stale: bool = True,
        last_run_state: DagRunState | None = None,
        limit: int = 100,
        offset: int = 0,
        order_by: str = "dag_id",
        favorite_of: str | None = None,
        is_favorite: bool | None = None,
    ) -> Page[Dag]:
        """DAGs matching the filters; dag_id_pattern is a SQL LIKE pattern as in Airflow.

        order_by fields: dag_id, dag_display_name, next_dagrun, last_parsed_time, owner,
        is_paused, created_at, updated_at. ``is_favorite`` (with ``favorite_of``, a username)
        keeps the DAGs that user marked (True) or did not mark (False).
        """
        ...

    async def set_dag_favorite(
        self, tenant: str, username: str, dag_id: str, *, favorite: bool
    ) -> None:
        """Mark (idempotent) or unmark a favorite DAG (NotFound; Conflict if not marked)."""
        ...

    async def list_favorite_dag_ids(self, tenant: str, username: str) -> set[str]:
        """The dag_ids ``username`` marked as favorite."""
        ...

    async def is_dag_favorite(self, tenant: str, username: str, dag_id: str) -> bool:
        """Whether ``username`` marked ``dag_id`` as favorite."""
        ...

    async def patch_dag(self, tenant: str, dag_id: str, *, is_paused: bool) -> Dag:
        """Pause or unpause one DAG (NotFound)."""
        ...

    async def patch_dags(
        self,
        tenant: str,
        *,
        is_paused: bool,
        dag_id_pattern: str | None = None,
        tags: Collection[str] | None = None,
        owners: Collection[str] | None = None,
        exclude_stale: bool = True,
    ) -> list[Dag]:
        """Pause or unpause every matching DAG; returns them."""
        ...

    async def delete_dag(self, tenant: str, dag_id: str) -> None:
        """Delete a DAG with its versions, runs and TIs (NotFound; Conflict if a TI runs)."""
        ...

    async def list_dag_tags(
        self, tenant: str, *, pattern: str | None = None, limit: int = 100, offset: int = 0
    ) -> Page[str]:
        """Distinct tags of non-stale DAGs, sorted."""
        ...

    async def list_dag_versions(
        self,
        tenant: str,
        dag_id: str,
        *,
        limit: int = 100,
        offset: int = 0,
        order_by: str = "version_number",
    ) -> Page[DagVersion]:
        """Versions of a DAG ("~" for all DAGs); order_by version_number, created_at, dag_id."""
        ...

    async def get_dag_version(self, tenant: str, dag_id: str, version_number: int) -> DagVersion:
        """One version by its number (NotFound)."""
        ...

    async def get_spec(self, version_id: UUID) -> DagSpec:
        """The spec of a version (cached: versions are immutable)."""
        ...

    async def get_dag_source(
        self, tenant: str, dag_id: str, version_number: int | None = None
    ) -> DagSource:
        """The DAG file text of a version (the current one by default)."""
        ...

    async def list_schedulable_dags(self) -> list[Dag]:
        """Unpaused, non-stale DAGs with a schedule and a current version, all tenants."""
        ...

    async def set_next_dagrun(
        self,
        dag_pk: int,
        *,
        logical_date: datetime | None,
        data_interval_start: datetime | None,
        data_interval_end: datetime | None,
        run_after: datetime | None,
    ) -> None:
        """Store the scheduler's next planned run for a DAG (Dag.id)."""
        ...

    async def set_dag_stale(self, tenant: str, dag_id: str, is_stale: bool) -> None:
        """Mark a DAG stale (its source vanished) or active again."""
        ...

    # -- DAG runs --------------------------------------------------------------------------

    async def create_run(
        self,
        tenant: str,
        dag_id: str,
        *,
        run_id: str | None = None,
        logical_date: datetime | None = UNSET,
        data_interval_start: datetime | None = None,
        data_interval_end: datetime | None = None,
        run_after: datetime | None = None,
        conf: Mapping[str, Any] | None = None,
        note: str | None = None,
        run_type: DagRunType = DagRunType.MANUAL,
        triggered_by: str | None = None,
        triggering_user_name: str | None = None,
        state: DagRunState = DagRunState.QUEUED,
        dag_version_id: UUID | None = None,
        now: datetime | None = None,
    ) -> DagRun:
        """Create a run pinned to the current (or given) version, and its task instances.

        logical_date UNSET -> now; None -> no logical date (Airflow 3). run_after defaults to
        logical_date or now; run_id defaults to ``<run_type>__<iso of logical_date or
        run_after>`` as Airflow does. Conflict on a duplicate run_id (or logical_date).
        """
        ...

    async def get_run(self, tenant: str, dag_id: str, run_id: str) -> DagRun:
        """The run (NotFound)."""
        ...

    async def get_run_by_id(self, run_pk: int) -> DagRun:
        """The run by DagRun.id (NotFound)."""
        ...

    async def list_runs(
        self,
        tenant: str,
        dag_id: str = ALL,
        *,
        run_id_pattern: str | None = None,
        states: Collection[DagRunState] | None = None,
        run_types: Collection[DagRunType] | None = None,
        dag_ids: Collection[str] | None = None,
        logical_date_gte: datetime | None = None,
        logical_date_lte: datetime | None = None,
        start_date_gte: datetime | None = None,
        start_date_lte: datetime | None = None,
        end_date_gte: datetime | None = None,
        end_date_lte: datetime | None = None,
        run_after_gte: datetime | None = None,
        run_after_lte: datetime | None = None,
        updated_at_gte: datetime | None = None,
        updated_at_lte: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
        order_by: str = "id",
    ) -> Page[DagRun]:
        """Runs of one DAG or all ("~"); order_by id, run_id, state, logical_date, run_after,
        start_date, end_date, queued_at, updated_at, dag_id, run_type, conf is not sortable."""
        ...

    async def patch_run(
        self,
        tenant: str,
        dag_id: str,
        run_id: str,
        *,
        state: DagRunState | None = None,
        note: str | None = UNSET,
        now: datetime | None = None,
    ) -> DagRun:
        """Mark a run (queued/success/failed) and/or set its note.

        Marking success/failed also finishes its unfinished task instances as Airflow does
        (success: unfinished -> success; failed: running/queued/scheduled -> failed, none ->
        skipped). Marking queued re-queues a finished run.
        """
        ...

    async def delete_run(self, tenant: str, dag_id: str, run_id: str) -> None:
        """Delete a run with its task instances, history and XCom index (NotFound)."""
        ...

    async def clear_run(
        self,
        tenant: str,
        dag_id: str,
        run_id: str,
        *,
        only_failed: bool = False,
        dry_run: bool = False,
        run_on_latest_version: bool = False,
        now: datetime | None = None,
    ) -> list[TaskInstance]:
        """Clear a run's task instances (all, or failed ones) and re-queue it; see clear_tis."""
        ...

    async def list_active_runs(
        self, *, limit: int = 1000, states: Collection[DagRunState] | None = None
    ) -> list[DagRun]:
        """Queued and running runs of every tenant, oldest queued_at first (scheduler)."""
        ...

    async def count_active_runs(self, dag_pks: Collection[int]) -> dict[int, int]:
        """Dag.id -> number of running runs (for max_active_runs)."""
        ...

    async def transition_run(
        self,
        run_pk: int,
        to_state: DagRunState,
        *,
        expected: Collection[DagRunState] | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Guarded run state change; False when the run was not in an expected state.

        expected defaults to every state allowed to move to ``to_state`` (RUN_TRANSITIONS).
        Stamps start_date on running, end_date on success/failed.
        """
        ...

    async def touch_run(self, run_pk: int, now: datetime | None = None) -> None:
        """Record the scheduler's last_scheduling_decision for a run."""
        ...

    # -- task instances --------------------------------------------------------------------

    async def create_task_instances(self, run_pk: int) -> list[TaskInstance]:
        """Create one TI per task of the run's pinned spec (idempotent); returns the new ones."""
        ...

    async def expand_mapped_ti(self, run_pk: int, task_id: str, length: int) -> list[TaskInstance]:
        """Turn the unmapped TI of a task into map indexes 0..length-1 (idempotent)."""
        ...

    async def get_ti(
        self, tenant: str, dag_id: str, run_id: str, task_id: str, map_index: int = -1
    ) -> TaskInstance:
        """The task instance (NotFound)."""
        ...

    async def get_ti_by_id(self, ti_id: UUID) -> TaskInstance:
        """The task instance by TaskInstance.id (NotFound)."""
        ...

    async def list_tis(
        self,
        tenant: str,
        dag_id: str = ALL,
        run_id: str = ALL,
        *,
        task_ids: Collection[str] | None = None,
        task_id_pattern: str | None = None,
        map_index: int | None = None,
        states: Collection[TIState | None] | None = None,
        pools: Collection[str] | None = None,
        queues: Collection[str] | None = None,
        executors: Collection[str] | None = None,
        dag_ids: Collection[str] | None = None,
        run_ids: Collection[str] | None = None,
        logical_date_gte: datetime | None = None,
        logical_date_lte: datetime | None = None,
        start_date_gte: datetime | None = None,
        start_date_lte: datetime | None = None,
        end_date_gte: datetime | None = None,
        end_date_lte: datetime | None = None,
        duration_gte: float | None = None,
        duration_lte: float | None = None,
        limit: int = 100,
        offset: int = 0,
        order_by: str = "map_index",
    ) -> Page[TaskInstance]:
        """Task instances of one run, one DAG's runs, or everything ("~").

        states may include None ("no status"). order_by fields: id, task_id, map_index, state,
        start_date, end_date, duration, try_number, pool, priority_weight, queued_dttm,
        logical_date, run_after, dag_id, run_id, rendered_map_index... (see _TI_ORDER).
        """
        ...

    async def list_run_tis(self, run_pks: Collection[int]) -> list[TaskInstance]:
        """Every TI of these runs (scheduler snapshot), by run then task_id then map_index."""
        ...

    async def list_ti_tries(
        self, tenant: str, dag_id: str, run_id: str, task_id: str, map_index: int = -1
    ) -> list[TaskInstanceTry]:
        """Every try (finished ones from history, then the current), by try_number."""
        ...

    async def get_ti_try(
        self,
        tenant: str,
        dag_id: str,
        run_id: str,
        task_id: str,
        try_number: int,
        map_index: int = -1,
    ) -> TaskInstanceTry:
        """One try (NotFound)."""
        ...

    async def transition_ti(
        self,
        ti_id: UUID,
        to_state: TIState | None,
        *,
        expected: Collection[TIState | None] | None = None,
        try_number: int | None = None,
        now: datetime | None = None,
        next_retry_at: datetime | None = None,
        hostname: str | None = None,
        pid: int | None = None,
        executor: str | None = None,
        external_executor_id: str | None = None,
        rendered_fields: Mapping[str, Any] | None = None,
    ) -> bool:
        """Guarded TI state change: one UPDATE ... WHERE state = ANY(expected).

        Returns False (never raises) when the TI was not in an expected state, or when
        ``try_number`` is given and differs (a late report of an old try). ``expected``
        defaults to the states TI_TRANSITIONS allows into ``to_state``; an explicit set outside
        that table raises InvalidArgument. Side effects by target state: scheduled ->
        try_number += 1 and scheduled_dttm; queued -> queued_dttm; running -> start_date,
        last_heartbeat_at; finished states -> end_date, duration and a history row.
        """
        ...

    async def transition_tis(
        self,
        ti_ids: Collection[UUID],
        to_state: TIState | None,
        *,
        expected: Collection[TIState | None] | None = None,
        now: datetime | None = None,
    ) -> list[UUID]:
        """Bulk guarded change (one statement); returns the ids that actually changed."""
        ...

    async def heartbeat_ti(
        self, ti_id: UUID, try_number: int, *, now: datetime | None = None
    ) -> bool:
        """Record a heartbeat; False when that try is no longer running (the worker must stop)."""
        ...

    async def list_stale_running_tis(
        self, older_than: datetime, limit: int = 100
    ) -> list[TaskInstance]:
        """Running TIs whose last heartbeat is older than ``older_than`` (reaper)."""
        ...

    async def patch_ti(
        self,
        tenant: str,
        dag_id: str,
        run_id: str,
        task_id: str,
        map_index: int = -1,
        *,
        state: TIState | None = UNSET,
        note: str | None = UNSET,
        now: datetime | None = None,
    ) -> TaskInstance:
        """Mark a TI (success, failed, skipped) and/or set its note; Conflict on a lost race."""
        ...

    async def clear_tis(
        self,
        tenant: str,
        dag_id: str,
        *,
        run_id: str | None = None,
        task_ids: Sequence[str | tuple[str, int]] | None = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        only_failed: bool = True,
        only_running: bool = False,
        include_upstream: bool = False,
        include_downstream: bool = False,
        include_past: bool = False,
        include_future: bool = False,
        reset_dag_runs: bool = True,
        run_on_latest_version: bool = False,
        dry_run: bool = False,
        now: datetime | None = None,
    ) -> list[TaskInstance]:
        """Airflow's clearTaskInstances; returns the TIs cleared (or that would be, on dry_run).

        Task set: task_ids (None = all) grown along the pinned spec's graph with
        include_upstream/downstream; runs: run_id (or logical_date range start/end_date),
        plus earlier/later runs with include_past/future. only_failed keeps failed and
        upstream_failed TIs; only_running keeps running ones. Each cleared TI: its try is
        recorded in history, state -> None (running -> restarting), end/start cleared,
        max_tries raised so its retries count again; try_number grows when next scheduled.
        reset_dag_runs: the runs go back to queued, clear_number += 1.
        """
        ...

    # -- XCom index (values live in Redis) --------------------------------------------------

    async def upsert_xcom(
        self, ti_id: UUID, key: str, size: int, *, now: datetime | None = None
    ) -> None:
        """Record (or refresh) that the TI pushed an XCom ``key`` of ``size`` bytes."""
        ...

    async def list_xcoms(
        self,
        tenant: str,
        dag_id: str = ALL,
        run_id: str = ALL,
        task_id: str = ALL,
        *,
        map_index: int | None = None,
        key: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[XComEntry]:
        """XCom index entries ("~" wildcards), by dag_id, run_id, task_id, map_index, key."""
        ...

    async def get_xcom_entry(
        self, tenant: str, dag_id: str, run_id: str, task_id: str, key: str, map_index: int = -1
    ) -> XComEntry:
        """One index entry (NotFound)."""
        ...

    async def delete_xcoms(self, ti_id: UUID) -> int:
        """Drop a TI's index entries (before a new try); returns how many."""
        ...

    # -- variables ---------------------------------------------------------------------------

    async def get_variable(self, tenant: str, key: str) -> Variable:
        """The variable (NotFound)."""
        ...

    async def list_variables(
        self,
        tenant: str,
        *,
        key_pattern: str | None = None,
        limit: int = 100,
        offset: int = 0,
        order_by: str = "key",
    ) -> Page[Variable]:
        """Variables, key_pattern a LIKE pattern; order_by key, id, description."""
        ...

    async def create_variable(self, tenant: str, variable: Variable) -> Variable:
        """Create a variable (Conflict when the key exists)."""
        ...

    async def put_variable(self, tenant: str, variable: Variable) -> Variable:
        """Create or overwrite a variable."""
        ...

    async def update_variable(self, tenant: str, variable: Variable) -> Variable:
        """Overwrite an existing variable (NotFound)."""
        ...

    async def delete_variable(self, tenant: str, key: str) -> None:
        """Delete a variable (NotFound)."""
        ...

    async def bulk_variables(
        self, tenant: str, actions: Sequence[BulkAction[Variable]]
    ) -> BulkResult:
        """Apply Airflow bulk actions; per-entity errors are reported, not raised."""
        ...

    # -- connections -------------------------------------------------------------------------

    async def get_connection(self, tenant: str, conn_id: str) -> Connection:
        """The connection, decrypted (NotFound; Unavailable when the key cannot decrypt)."""
        ...

    async def list_connections(
        self,
        tenant: str,
        *,
        conn_id_pattern: str | None = None,
        limit: int = 100,
        offset: int = 0,
        order_by: str = "conn_id",
    ) -> Page[Connection]:
        """Connections, decrypted; order_by conn_id, conn_type, description, host, port, id."""
        ...

    async def create_connection(self, tenant: str, conn: Connection) -> Connection:
        """Create (Conflict when it exists; Unavailable without LEOFLOW_SECRET_KEY)."""
        ...

    async def put_connection(self, tenant: str, conn: Connection) -> Connection:
        """Create or overwrite (Unavailable without LEOFLOW_SECRET_KEY)."""
        ...

    async def update_connection(self, tenant: str, conn: Connection) -> Connection:
        """Overwrite an existing connection (NotFound; Unavailable without a key)."""
        ...

    async def delete_connection(self, tenant: str, conn_id: str) -> None:
        """Delete a connection (NotFound)."""
        ...

    async def bulk_connections(
        self, tenant: str, actions: Sequence[BulkAction[Connection]]
    ) -> BulkResult:
        """Apply Airflow bulk actions to connections."""
        ...

    # -- pools -------------------------------------------------------------------------------

    async def get_pool(self, tenant: str, name: str) -> Pool:
        """The pool with its occupancy (NotFound)."""
        ...

    async def list_pools(
        self,
        tenant: str,
        *,
        name_pattern: str | None = None,
        limit: int = 100,
        offset: int = 0,
        order_by: str = "id",
    ) -> Page[Pool]:
        """Pools with occupancy; order_by id, name, slots."""
        ...

    async def create_pool(self, tenant: str, pool: Pool) -> Pool:
        """Create a pool (Conflict when it exists)."""
        ...

    async def put_pool(self, tenant: str, pool: Pool) -> Pool:
        """Create or overwrite a pool."""
        ...

    async def update_pool(self, tenant: str, pool: Pool) -> Pool:
        """Overwrite slots/description/include_deferred (NotFound)."""
        ...

    async def delete_pool(self, tenant: str, name: str) -> None:
        """Delete a pool (NotFound; InvalidArgument for default_pool)."""
        ...

    async def bulk_pools(self, tenant: str, actions: Sequence[BulkAction[Pool]]) -> BulkResult:
        """Apply Airflow bulk actions to pools."""
        ...

    # -- audit log ---------------------------------------------------------------------------

    async def add_audit(
        self,
        tenant: str,
        event: str,
        *,
        owner: str | None = None,
        dag_id: str | None = None,
        task_id: str | None = None,
        run_id: str | None = None,
        map_index: int | None = None,
        try_number: int | None = None,
        logical_date: datetime | None = None,
        extra: str | Mapping[str, Any] | None = None,
        when: datetime | None = None,
    ) -> AuditEvent:
        """Append an event (extra given as a mapping is stored as JSON text)."""
        ...

    async def get_audit(self, tenant: str, event_id: int) -> AuditEvent:
        """One event (NotFound)."""
        ...

    async def list_audit(
        self,
        tenant: str,
        *,
        dag_id: str | None = None,
        task_id: str | None = None,
        run_id: str | None = None,
        map_index: int | None = None,
        try_number: int | None = None,
        owner: str | None = None,
        event: str | None = None,
        included_events: Collection[str] | None = None,
        excluded_events: Collection[str] | None = None,
        before: datetime | None = None,
        after: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
        order_by: str = "id",
    ) -> Page[AuditEvent]:
        """Events matching the filters; order_by id, when, event, dag_id, owner..."""
        ...

    # -- import errors -----------------------------------------------------------------------

    async def upsert_import_error(
        self,
        tenant: str,
        filename: str,
        stack_trace: str,
        *,
        bundle_name: str | None = None,
        when: datetime | None = None,
    ) -> DagImportError:
        """Record (or replace) the error of one file."""
        ...

    async def delete_import_error(self, tenant: str, filename: str) -> bool:
        """Forget a file's error (it compiled again); False when there was none."""
        ...

    async def get_import_error(self, tenant: str, import_error_id: int) -> DagImportError:
        """One import error (NotFound)."""
        ...

    async def list_import_errors(
        self,
        tenant: str,
        *,
        filename_pattern: str | None = None,
        limit: int = 100,
        offset: int = 0,
        order_by: str = "id",
    ) -> Page[DagImportError]:
        """Import errors; order_by id, timestamp, filename, bundle_name."""
        ...


class LogSubscription(Protocol):
    """An async iterator over live log lines; close it (or use ``async with``)."""

    def __aiter__(self) -> AsyncIterator[str]: ...

    async def aclose(self) -> None:
        """Unsubscribe."""
        ...


class RedisAPI(Protocol):
    """What ``RedisStore`` offers: XCom values and live log fan-out.

    Create with ``await RedisStore.connect(url, settings=..., prefix="leoflow")``; close with
    ``await redis_store.close()``. Keys are built only in ``leoflow/store/redis_keys.py``.
    """

    async def set_xcom(
        self,
        tenant: str,
        dag_id: str,
        run_id: str,
        task_id: str,
        key: str,
        value: Any,
        *,
        map_index: int = -1,
        ttl_seconds: int | None = None,
    ) -> int:
        """Store a JSON value; returns its size in bytes. Over XCOM_MAX_BYTES -> XComTooLarge."""
        ...

    async def get_xcom(
        self, tenant: str, dag_id: str, run_id: str, task_id: str, key: str, map_index: int = -1
    ) -> Any:
        """The decoded value (NotFound when absent or expired)."""
        ...

    async def delete_xcoms(self, tenant: str, dag_id: str, run_id: str | None = None) -> int:
        """Delete every value of a run (or of a DAG); returns how many."""
        ...

    async def publish_log(
        self,
        tenant: str,
        dag_id: str,
        run_id: str,
        task_id: str,
        try_number: int,
        line: str,
        *,
        map_index: int = -1,
    ) -> int:
        """Publish one log line (a JSON-lines record) to live followers; returns receivers."""
        ...

    async def subscribe_logs(
        self,
        tenant: str,
        dag_id: str,
        run_id: str,
        task_id: str,
        try_number: int,
        *,
        map_index: int = -1,
    ) -> LogSubscription:
        """Subscribe to a try's live log lines (subscribed when this returns)."""
        ...


__all__ = [
    "ALL",
    "DEFAULT_POOL",
    "DEFAULT_POOL_SLOTS",
    "DEFAULT_TENANT",
    "FINISHED_TRY_STATES",
    "NOTIFY_CHANNEL",
    "RUN_TRANSITIONS",
    "TERMINAL_RUN_STATES",
    "TERMINAL_TI_STATES",
    "TI_MANUAL_MARKS",
    "TI_TRANSITIONS",
    "UNSET",
    "AuditEvent",
    "BulkAction",
    "BulkActionKind",
    "BulkActionResult",
    "BulkResult",
    "Connection",
    "Dag",
    "DagImportError",
    "DagRun",
    "DagRunState",
    "DagRunType",
    "DagSource",
    "DagVersion",
    "InvalidArgument",
    "LogSubscription",
    "OnExistence",
    "OnNonExistence",
    "Page",
    "Pool",
    "RedisAPI",
    "Role",
    "StoreAPI",
    "TIKey",
    "TIState",
    "TIStateOrNone",
    "TaskInstance",
    "TaskInstanceState",
    "TaskInstanceTry",
    "Tenant",
    "Unset",
    "User",
    "Variable",
    "XComEntry",
    "XComTooLarge",
    "run_sources",
    "ti_sources",
]
