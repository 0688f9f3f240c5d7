"""etl: extract readings with bash, parse them in a PythonOperator, transform and load them with
TaskFlow, then report with bash.

Shows the three ways data moves between tasks: a classic operator's `.output`, a TaskFlow return
value, and `op_kwargs` holding an upstream output.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, task

READINGS = '[{"city": "Paris", "temp_c": 21.5}, {"city": "Oslo", "temp_c": 12.0}]'


def parse_readings(raw: str, min_temp_c: float) -> list[dict]:
    """Decode the JSON printed by `extract` and keep the readings above a threshold."""
    rows = json.loads(raw)
    return [row for row in rows if row["temp_c"] >= min_temp_c]


default_args = {
    "owner": "data-eng",
    "retries": 1,
    "retry_delay": timedelta(minutes=5),
}

with DAG(
    dag_id="etl",
    schedule="0 6 * * *",
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    tags=["etl"],
) as dag:
    # BashOperator pushes the last line of its stdout as its XCom return value.
    extract = BashOperator(task_id="extract", bash_command=f"echo '{READINGS}'")

    parse = PythonOperator(
        task_id="parse",
        python_callable=parse_readings,
        op_kwargs={"raw": extract.output, "min_temp_c": 5.0},
    )

    @task(execution_timeout=timedelta(minutes=2))
    def transform(rows: list[dict], unit: str = "C") -> list[dict]:
        unit = os.environ.get("REPORT_UNIT", unit)
        if unit == "F":
            return [{**row, "temp": row["temp_c"] * 9 / 5 + 32, "unit": "F"} for row in rows]
        return [{**row, "temp": row["temp_c"], "unit": "C"} for row in rows]

    @task
    def load(rows: list[dict]) -> int:
        table = os.environ.get("TARGET_TABLE", "weather")
        for row in rows:
            print(f"INSERT INTO {table} VALUES ({row['city']!r}, {row['temp']:.1f})")
        return len(rows)

    report = BashOperator(
        task_id="report",
        bash_command='echo "report for $TARGET_TABLE is ready"',
        env={"TARGET_TABLE": "weather_daily"},
    )

    loaded = load(transform(parse.output))
    loaded >> report
