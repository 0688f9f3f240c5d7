"""As a new user would: `leoflow lite`, log in, run the map-reduce example, edit it, stop."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
from e2e_lite_helpers import (
    LiteProcess,
    api,
    gone_within,
    install_with_script,
    trigger_and_wait,
)

DAG_ID = "ml_hparam_search"


def _reduced(client: object, run_id: str) -> object:
    entry = client.get(  # type: ignore[attr-defined]
        f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/select_best/xcomEntries/return_value"
    )
    assert entry.status_code == 200, entry.text
    return entry.json()["value"]


def test_e2e_lite_new_user(
    lite_dirs: tuple[Path, Path], launch: Callable[..., LiteProcess]
) -> None:
    home, workspace = lite_dirs
    # install.sh: uv tool install of this checkout into a private folder, then `leoflow setup`.
    leoflow, log = install_with_script(home.parent / "install", home, workspace)
    assert "ready. Start Leoflow Lite" in log
    assert (workspace / DAG_ID / "dag.py").is_file()
    lite = launch(home, workspace, command=[str(leoflow)])
    lite.wait_healthy()
    page = httpx.get(lite.url + "/")
    assert page.status_code == 200 and "<html" in page.text.lower()  # the Airflow UI
    # The password is printed once, in the start-up panel.
    password = lite.wait_output(r"admin / (\S+)").group(1)
    lite.wait_output(r"Leoflow Lite.* ready in")
    with api(lite.url, password) as client:
        run = trigger_and_wait(client, DAG_ID)
        assert run["state"] == "success"
        assert _reduced(client, run["dag_run_id"]) == {"lr": 0.01, "loss": 0.050045}
        lite.wait_output(rf"run {DAG_ID} \S+ \(v1\): running -> success")

        dag_py = workspace / DAG_ID / "dag.py"
        dag_py.write_text(dag_py.read_text().replace("0.01, 0.03", "0.01, 0.02, 0.03"))
        lite.wait_output(rf"registered {DAG_ID} v2")
        versions = client.get(f"/dags/{DAG_ID}/dagVersions").json()
        assert versions["total_entries"] == 2
        run = trigger_and_wait(client, DAG_ID)
        assert run["state"] == "success"
        assert _reduced(client, run["dag_run_id"]) == {"lr": 0.02, "loss": 0.05}
        lite.wait_output(rf"run {DAG_ID} \S+ \(v2\): running -> success")

    started = lite.tree()
    assert started, "Lite should have started its datastores as children"
    took = lite.terminate()
    assert lite.proc.returncode == 0, lite.output
    assert took < 15, f"SIGTERM took {took:.1f}s"
    assert not gone_within(started, 5), "processes left behind after SIGTERM"
    assert "Leoflow Lite stopped" in lite.output


def test_e2e_lite_restart_keeps_data_and_is_single_instance(
    lite_dirs: tuple[Path, Path], launch: Callable[..., LiteProcess]
) -> None:
    home, workspace = lite_dirs
    first = launch(home, workspace)
    first.wait_healthy()
    password = first.wait_output(r"admin / (\S+)").group(1)
    first.wait_output(r"ready in")

    second = launch(home, workspace)
    assert second.proc.wait(60) != 0
    second._reader.join(5)
    assert "already running" in second.output
    assert f"pid {first.proc.pid}" in second.output and first.url in second.output

    first.terminate()
    began = time.monotonic()
    again = launch(home, workspace, port=first.port)
    again.wait_healthy()
    warm = time.monotonic() - began
    again.wait_output(r"ready in")
    assert "admin / " not in again.output  # the password is printed only once
    with api(again.url, password) as client:
        versions = client.get(f"/dags/{DAG_ID}/dagVersions").json()
        assert versions["total_entries"] == 1  # same files, same version after a restart
    print(f"warm start to healthy: {warm:.2f}s")
    again.terminate()
