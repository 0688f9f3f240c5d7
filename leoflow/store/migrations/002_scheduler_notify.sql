-- 002_scheduler_notify: wake the scheduler on commits that give it work (LISTEN/NOTIFY).
--
-- Channel 'leoflow_scheduler' (leoflow.store.api.NOTIFY_CHANNEL). Payloads:
--   'run:<dag_runs.id>'  a run was created, re-queued or cleared;
--   'ti:<dag_runs.id>'   a task instance of that run finished a try (or was cleared).
-- Postgres delivers notifications at commit and folds identical payloads of one transaction,
-- so a bulk update of one run's TIs costs one wake-up.

CREATE FUNCTION leoflow_notify_run() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('leoflow_scheduler', 'run:' || NEW.id);
    RETURN NULL;
END $$;

CREATE TRIGGER dag_runs_notify
    AFTER INSERT OR UPDATE OF state ON dag_runs
    FOR EACH ROW WHEN (NEW.state = 'queued')
    EXECUTE FUNCTION leoflow_notify_run();

CREATE FUNCTION leoflow_notify_ti() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('leoflow_scheduler', 'ti:' || NEW.dag_run_pk);
    RETURN NULL;
END $$;

CREATE TRIGGER task_instances_notify
    AFTER UPDATE OF state ON task_instances
    FOR EACH ROW
    WHEN (NEW.state IS DISTINCT FROM OLD.state AND (NEW.state IS NULL OR NEW.state IN
          ('success', 'failed', 'skipped', 'upstream_failed', 'up_for_retry', 'removed')))
    EXECUTE FUNCTION leoflow_notify_ti();
