-- 001_initial: Leoflow's metadata schema (see docs/adr/0002-store-layout.md).
--
-- States are text with CHECK constraints (not Postgres enums) so later migrations can add a
-- state with one ALTER. Every business object carries tenant_id. Times are timestamptz (UTC).

CREATE TABLE tenants (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO tenants (name) VALUES ('default');

CREATE TABLE users (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id      bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    username       text NOT NULL,
    email          text,
    password_hash  text NOT NULL,
    role           text NOT NULL CHECK (role IN ('viewer', 'user', 'op', 'admin')),
    is_active      boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    last_login_at  timestamptz,
    UNIQUE (tenant_id, username)
);

CREATE TABLE dags (
    id                               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id                        bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    dag_id                           text NOT NULL,
    is_paused                        boolean NOT NULL DEFAULT false,
    is_stale                         boolean NOT NULL DEFAULT false,
    current_version_id               uuid,
    -- Denormalized from the current version so that listing never parses a spec.
    description                      text,
    owner                            text NOT NULL DEFAULT 'airflow',
    tags                             text[] NOT NULL DEFAULT '{}',
    schedule                         jsonb,
    timetable_summary                text,
    timezone                         text NOT NULL DEFAULT 'UTC',
    start_date                       timestamptz,
    end_date                         timestamptz,
    catchup                          boolean NOT NULL DEFAULT false,
    max_active_runs                  integer NOT NULL DEFAULT 16,
    max_active_tasks                 integer NOT NULL DEFAULT 16,
    fileloc                          text NOT NULL DEFAULT 'dag.py',
    last_parsed_time                 timestamptz,
    -- Written by the scheduler: its next planned run.
    next_dagrun_logical_date         timestamptz,
    next_dagrun_data_interval_start  timestamptz,
    next_dagrun_data_interval_end    timestamptz,
    next_dagrun_run_after            timestamptz,
    created_at                       timestamptz NOT NULL DEFAULT now(),
    updated_at                       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, dag_id)
);
CREATE INDEX dags_tags_idx ON dags USING gin (tags);
CREATE INDEX dags_schedulable_idx ON dags (next_dagrun_run_after)
    WHERE NOT is_paused AND NOT is_stale AND schedule IS NOT NULL;

CREATE TABLE dag_versions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    dag_pk          bigint NOT NULL REFERENCES dags (id) ON DELETE CASCADE,
    version_number  integer NOT NULL CHECK (version_number >= 1),
    label           text NOT NULL,
    content_hash    text NOT NULL,
    spec            jsonb NOT NULL,
    image           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by      text,
    UNIQUE (dag_pk, version_number),
    UNIQUE (dag_pk, content_hash)
);
ALTER TABLE dags ADD CONSTRAINT dags_current_version_fk
    FOREIGN KEY (current_version_id) REFERENCES dag_versions (id) ON DELETE SET NULL;

CREATE TABLE dag_runs (
    id                        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id                 bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    dag_pk                    bigint NOT NULL REFERENCES dags (id) ON DELETE CASCADE,
    dag_id                    text NOT NULL,  -- immutable copy of dags.dag_id for cheap listing
    run_id                    text NOT NULL,
    dag_version_id            uuid NOT NULL REFERENCES dag_versions (id),
    state                     text NOT NULL DEFAULT 'queued'
                              CHECK (state IN ('queued', 'running', 'success', 'failed')),
    run_type                  text NOT NULL
                              CHECK (run_type IN ('manual', 'scheduled', 'backfill',
                                                  'asset_triggered')),
    logical_date              timestamptz,
    data_interval_start       timestamptz,
    data_interval_end         timestamptz,
    run_after                 timestamptz NOT NULL,
    conf                      jsonb NOT NULL DEFAULT '{}',
    note                      text,
    triggered_by              text,
    triggering_user_name      text,
    queued_at                 timestamptz,
    start_date                timestamptz,
    end_date                  timestamptz,
    last_scheduling_decision  timestamptz,
    clear_number              integer NOT NULL DEFAULT 0,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    UNIQUE (dag_pk, run_id),
    UNIQUE (dag_pk, logical_date)
);
-- The scheduler's hot query: every active run, oldest first.
CREATE INDEX dag_runs_active_idx ON dag_runs (queued_at, id) WHERE state IN ('queued', 'running');
CREATE INDEX dag_runs_dag_run_after_idx ON dag_runs (dag_pk, run_after DESC);
CREATE INDEX dag_runs_tenant_idx ON dag_runs (tenant_id, id);

CREATE TABLE task_instances (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id             bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    dag_run_pk            bigint NOT NULL REFERENCES dag_runs (id) ON DELETE CASCADE,
    dag_id                text NOT NULL,  -- immutable copies for listing without joins
    run_id                text NOT NULL,
    dag_version_id        uuid NOT NULL REFERENCES dag_versions (id),
    task_id               text NOT NULL,
    map_index             integer NOT NULL DEFAULT -1,
    state                 text CHECK (state IN ('removed', 'scheduled', 'queued', 'running',
                                                'success', 'restarting', 'failed',
                                                'up_for_retry', 'up_for_reschedule',
                                                'upstream_failed', 'skipped', 'deferred')),
    try_number            integer NOT NULL DEFAULT 0,
    max_tries             integer NOT NULL DEFAULT 0,
    start_date            timestamptz,
    end_date              timestamptz,
    duration              double precision,
    queued_dttm           timestamptz,
    scheduled_dttm        timestamptz,
    next_retry_at         timestamptz,
    hostname              text,
    pid                   integer,
    executor              text,
    external_executor_id  text,
    pool                  text NOT NULL DEFAULT 'default_pool',
    pool_slots            integer NOT NULL DEFAULT 1,
    queue                 text NOT NULL DEFAULT 'default',
    priority_weight       integer NOT NULL DEFAULT 1,
    operator              text,
    note                  text,
    last_heartbeat_at     timestamptz,
    rendered_fields       jsonb NOT NULL DEFAULT '{}',
    updated_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (dag_run_pk, task_id, map_index)
);
CREATE INDEX task_instances_run_state_idx ON task_instances (dag_run_pk, state);
CREATE INDEX task_instances_active_idx ON task_instances (state, pool)
    WHERE state IN ('scheduled', 'queued', 'running', 'up_for_retry', 'restarting', 'deferred');
CREATE INDEX task_instances_heartbeat_idx ON task_instances (last_heartbeat_at)
    WHERE state = 'running';
CREATE INDEX task_instances_dag_task_idx ON task_instances (tenant_id, dag_id, task_id);

-- One row per finished (or cleared) try; the current try lives in task_instances.
CREATE TABLE task_instance_history (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ti_id                 uuid NOT NULL REFERENCES task_instances (id) ON DELETE CASCADE,
    tenant_id             bigint NOT NULL,
    dag_id                text NOT NULL,
    run_id                text NOT NULL,
    task_id               text NOT NULL,
    map_index             integer NOT NULL,
    try_number            integer NOT NULL,
    state                 text,
    max_tries             integer NOT NULL,
    start_date            timestamptz,
    end_date              timestamptz,
    duration              double precision,
    queued_dttm           timestamptz,
    scheduled_dttm        timestamptz,
    hostname              text,
    pid                   integer,
    executor              text,
    external_executor_id  text,
    pool                  text NOT NULL,
    pool_slots            integer NOT NULL,
    queue                 text NOT NULL,
    priority_weight       integer NOT NULL,
    operator              text,
    dag_version_id        uuid NOT NULL,
    recorded_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (ti_id, try_number)
);

-- XCom index: values live in Redis under leoflow.store.redis_keys.xcom_value().
CREATE TABLE xcom_index (
    ti_id       uuid NOT NULL REFERENCES task_instances (id) ON DELETE CASCADE,
    key         text NOT NULL,
    tenant_id   bigint NOT NULL,
    dag_id      text NOT NULL,
    run_id      text NOT NULL,
    task_id     text NOT NULL,
    map_index   integer NOT NULL,
    size        integer NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ti_id, key)
);
CREATE INDEX xcom_index_lookup_idx ON xcom_index (tenant_id, dag_id, run_id, task_id);

CREATE TABLE variables (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    key          text NOT NULL,
    value        text NOT NULL,
    description  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, key)
);

-- password_enc and extra_enc hold "v1:<key id>:<base64 nonce||ciphertext>" (AES-256-GCM).
CREATE TABLE connections (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    conn_id      text NOT NULL,
    conn_type    text NOT NULL,
    description  text,
    host         text,
    login        text,
    schema       text,
    port         integer,
    password_enc text,
    extra_enc    text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, conn_id)
);

CREATE TABLE pools (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id         bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name              text NOT NULL,
    slots             integer NOT NULL CHECK (slots >= -1),
    description       text,
    include_deferred  boolean NOT NULL DEFAULT false,
    UNIQUE (tenant_id, name)
);
INSERT INTO pools (tenant_id, name, slots, description)
    SELECT id, 'default_pool', 128, 'Default pool' FROM tenants WHERE name = 'default';

CREATE TABLE audit_log (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    dttm          timestamptz NOT NULL DEFAULT now(),
    event         text NOT NULL,
    owner         text,
    dag_id        text,
    task_id       text,
    run_id        text,
    map_index     integer,
    try_number    integer,
    logical_date  timestamptz,
    extra         text
);
CREATE INDEX audit_log_tenant_dttm_idx ON audit_log (tenant_id, dttm);
CREATE INDEX audit_log_tenant_dag_idx ON audit_log (tenant_id, dag_id);

CREATE TABLE import_errors (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    filename     text NOT NULL,
    bundle_name  text,
    stack_trace  text NOT NULL,
    timestamp    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, filename)
);
