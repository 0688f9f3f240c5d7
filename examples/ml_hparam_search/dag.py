"""ml_hparam_search: a map-reduce over learning rates.

`trial(lr, data)` is called once per learning rate, which gives the tasks `trial`, `trial__1`,
... (Airflow's naming for repeated task ids). `select_best` receives the list of their results in
declaration order. The "training" is a closed-form toy loss so the example runs anywhere.
"""

from __future__ import annotations

import math

from airflow.sdk import DAG, Param, task

LEARNING_RATES = [0.001, 0.003, 0.01, 0.03, 0.1]

with DAG(
    dag_id="ml_hparam_search",
    schedule=None,
    catchup=False,
    params={"epochs": Param(20, type="integer", minimum=1, description="Training epochs.")},
    tags=["ml"],
):

    @task
    def prepare_data(samples: int = 1000) -> dict:
        return {"samples": samples, "noise": 0.05}

    @task(retries=3)
    def trial(lr: float, data: dict, epochs: int = 20) -> dict:
        # A toy loss curve: too small a rate learns slowly, too large a rate diverges.
        progress = 1 - math.exp(-lr * epochs * 50)
        instability = max(0.0, lr - 0.02) * 10
        return {"lr": lr, "loss": round(1 - progress + instability + data["noise"], 6)}

    @task
    def select_best(results: list[dict]) -> dict:
        return min(results, key=lambda r: r["loss"])

    @task
    def report(best: dict) -> None:
        print(f"best learning rate {best['lr']} (loss {best['loss']})")

    data = prepare_data(samples=2000)
    report(select_best([trial(lr, data) for lr in LEARNING_RATES]))
