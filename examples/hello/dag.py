"""hello: the smallest TaskFlow chain.

`greet` returns a string, `shout` upper-cases it and `show` prints it. Each return value travels
to the next task as an XCom; Leoflow runs every task in its own fresh worker.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import DAG, task

with DAG(
    dag_id="hello",
    schedule="@daily",
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    catchup=False,
    tags=["example"],
    doc_md=__doc__,
):

    @task
    def greet(name: str) -> str:
        return f"Hello, {name}!"

    @task(retries=2)
    def shout(greeting: str) -> str:
        return greeting.upper()

    @task
    def show(message: str) -> None:
        print(message)

    show(shout(greet("Leoflow")))
