"""A dependency change re-provisions the DAG's venv; the new version switches in when ready."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from liteapp_helpers import start_lite, wait_for

from leoflow.builder.venv import venv_key

DAG_ID = "hello"
NEW_DEPS = ["six==1.16.0"]


def test_liteapp_dependency_change_provisions_then_switches(
    new_home: Callable[[], tuple[Path, Path]], pg_template: Path
) -> None:
    home, workspace = new_home()
    lite = start_lite(home, workspace, pg_template)
    try:
        with lite.client() as api:
            config = workspace / DAG_ID / "leoflow.yaml"
            text = config.read_text()
            assert "dependencies: []" in text
            config.write_text(text.replace("dependencies: []", f"dependencies: {NEW_DEPS}"))

            def versions() -> int:
                return api.get(f"/dags/{DAG_ID}/dagVersions").json()["total_entries"]

            wait_for(lambda: versions() == 2, 180, "the version with the new dependency")
            # Registered only once its venv was complete (the marker is written last).
            venv = home / "venvs" / DAG_ID / venv_key("3.11", NEW_DEPS)
            assert (venv / ".leoflow-venv.json").is_file()
            assert list(venv.glob("lib/python3*/site-packages/six.py"))
            assert "venv hello ready in" in lite.output.getvalue()

            created = api.post(f"/dags/{DAG_ID}/dagRuns", json={"logical_date": None})
            run_id = created.json()["dag_run_id"]

            def finished() -> dict | None:
                run = api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}").json()
                return run if run["state"] in ("success", "failed") else None

            run = wait_for(finished, 120, "the run on the new venv")
            assert run["state"] == "success"
            tis = api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances").json()
            assert {ti["dag_version"]["version_number"] for ti in tis["task_instances"]} == {2}
    finally:
        lite.stop()


def test_liteapp_new_project_folder_is_picked_up_and_removal_marks_stale(
    new_home: Callable[[], tuple[Path, Path]], pg_template: Path
) -> None:
    import shutil

    home, workspace = new_home()
    lite = start_lite(home, workspace, pg_template)
    try:
        with lite.client() as api:

            def dag_ids() -> set[str]:
                return {d["dag_id"] for d in api.get("/dags").json()["dags"]}

            assert "hello_copy" not in dag_ids()
            staging = workspace.parent / "hello_copy"
            shutil.copytree(workspace / "hello", staging)
            config = staging / "leoflow.yaml"
            config.write_text(config.read_text().replace("dag_id: hello", "dag_id: hello_copy"))
            dag_py = staging / "dag.py"
            dag_py.write_text(dag_py.read_text().replace('dag_id="hello"', 'dag_id="hello_copy"'))
            staging.rename(workspace / "hello_copy")  # appears at once, as a `git pull` would
            # A folder moved in whole fires one event for the folder itself.
            wait_for(lambda: "hello_copy" in dag_ids(), 30, "the new project's DAG")
            shutil.rmtree(workspace / "hello_copy")
            wait_for(lambda: "hello_copy" not in dag_ids(), 30, "the DAG to go stale")
            assert "hello" in dag_ids()
    finally:
        lite.stop()
