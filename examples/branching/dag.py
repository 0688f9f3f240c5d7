"""branching: what runs when a task fails on purpose.

`flaky` always fails. Then:

* `alert` (one_failed) runs because one upstream failed;
* `publish` (none_failed) ends upstream_failed;
* `cleanup` (all_done) runs whatever happened;
* `summary` (none_failed_min_one_success) runs because `healthy` succeeded;
* `end` (always) closes the run.

The run itself ends failed, which is the point: trigger rules decide what still runs.
"""

from __future__ import annotations

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, task
from airflow.utils.trigger_rule import TriggerRule

with DAG(dag_id="branching", schedule=None, catchup=False, tags=["trigger-rules"]):
    start = EmptyOperator(task_id="start")

    @task
    def healthy() -> str:
        return "ok"

    @task(retries=0)
    def flaky() -> None:
        raise RuntimeError("this task fails on purpose")

    @task(trigger_rule=TriggerRule.ONE_FAILED)
    def alert() -> None:
        print("an upstream task failed: paging nobody, this is an example")

    @task(trigger_rule=TriggerRule.NONE_FAILED)
    def publish(status: str) -> None:
        print(f"publishing ({status})")

    @task(trigger_rule="all_done")
    def cleanup() -> None:
        print("cleaning up, whatever happened upstream")

    @task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    def summary() -> None:
        print("at least one path succeeded and none failed")

    end = EmptyOperator(task_id="end", trigger_rule=TriggerRule.ALWAYS)

    ok = healthy()
    bad = flaky()
    alerted = alert()
    done = cleanup()
    start >> [ok, bad]
    [ok, bad] >> alerted
    [ok, bad] >> done
    bad >> publish(ok)
    ok >> summary()
    [alerted, done] >> end
