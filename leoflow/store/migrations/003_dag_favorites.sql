-- 003_dag_favorites: DAGs a user marked as favorite (Airflow 3's dag_favorite table).
--
-- Keyed by the DAG's internal id (deleting a DAG drops its marks) and the caller's username
-- as its token names it, not a users row: tokens of externally managed users (and the tests'
-- minted ones) have no row, and a username is stable within its tenant.

CREATE TABLE dag_favorites (
    dag_pk      bigint NOT NULL REFERENCES dags (id) ON DELETE CASCADE,
    username    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (username, dag_pk)
);

CREATE INDEX dag_favorites_dag_idx ON dag_favorites (dag_pk);
