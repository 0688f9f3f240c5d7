"""The compile-time probe, end to end in a subprocess (python -m leoflow.compiler.probe)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from leoflow.compiler.probe import run_probe
from leoflow.spec import DagSpec

REPO = Path(__file__).resolve().parents[3]

GOOD = """
from datetime import datetime
from airflow.sdk import DAG, task
from airflow.providers.standard.operators.bash import BashOperator

print("top-level output from the user")  # must not reach the probe's result

with DAG("good", schedule="@daily", start_date=datetime(2024, 1, 1)):
    @task
    def m(x):
        return x * 2

    @task
    def total(parts):
        return sum(parts)

    done = BashOperator(task_id="done", bash_command="echo done")
    total([m(x) for x in range(3)]) >> done
"""


def _write(tmp_path: Path, source: str, name: str = "dag.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def _line(source: str, marker: str) -> int:
    lines = textwrap.dedent(source).splitlines()
    return next(i for i, text in enumerate(lines, start=1) if marker in text)


def test_good_dag(tmp_path: Path) -> None:
    result = run_probe(_write(tmp_path, GOOD))
    assert result["error"] is None
    (data,) = result["dags"]
    assert data["dag_id"] == "good" and data["_line"] == _line(GOOD, 'DAG("good"')
    assert [t["task_id"] for t in data["tasks"]] == ["done", "m", "m__1", "m__2", "total"]
    by_id = {t["task_id"]: t for t in data["tasks"]}
    assert by_id["m"]["callable"] == "dag:m"
    assert by_id["done"]["upstream"] == ["total"]
    data.pop("_line")
    for t in data["tasks"]:
        t.pop("_explicit")
    spec = DagSpec.model_validate(data)
    assert spec.task("total").fan_ins["parts"].slots[2].ref.task_id == "m__2"


def test_cli_writes_only_the_out_file(tmp_path: Path) -> None:
    dag_file = _write(tmp_path, GOOD)
    out = tmp_path / "out.json"
    proc = subprocess.run(
        [sys.executable, "-m", "leoflow.compiler.probe", str(dag_file), "--out", str(out)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "top-level output from the user\n"
    assert json.loads(out.read_text())["dags"][0]["dag_id"] == "good"


def test_cli_exits_non_zero_when_it_cannot_write(tmp_path: Path) -> None:
    dag_file = _write(tmp_path, GOOD)
    proc = subprocess.run(
        [sys.executable, "-m", "leoflow.compiler.probe", str(dag_file), "--out", "/nonexistent/x"],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0 and "cannot write" in proc.stderr


def test_syntax_error_reports_its_line(tmp_path: Path) -> None:
    src = """
    from airflow.sdk import DAG

    with DAG("x") as d:
        pass
    def broken(:
    """
    dag_file = _write(tmp_path, src)
    result = run_probe(dag_file)
    err = result["error"]
    assert result["dags"] == [] and err["kind"] == "syntax"
    assert err["line"] == _line(src, "def broken(") and err["path"] == str(dag_file)


def test_missing_module_names_module_line_and_hint(tmp_path: Path) -> None:
    src = """
    import os
    import pandas_not_installed_here.sub  # missing
    """
    result = run_probe(_write(tmp_path, src))
    err = result["error"]
    assert err["kind"] == "missing_module"
    assert err["module"] == "pandas_not_installed_here"
    assert err["line"] == _line(src, "# missing")
    assert "dependencies:" in err["hint"] and "leoflow.yaml" in err["hint"]


def test_missing_module_from_a_helper_points_at_the_dag_import(tmp_path: Path) -> None:
    (tmp_path / "helpers.py").write_text("import not_a_real_module_xyz\n")
    src = """
    from airflow.sdk import DAG
    import helpers  # here
    """
    err = run_probe(_write(tmp_path, src))["error"]
    assert err["module"] == "not_a_real_module_xyz" and err["line"] == _line(src, "# here")


def test_unprovided_airflow_module(tmp_path: Path) -> None:
    src = """
    from airflow.providers.amazon.aws.operators.s3 import S3CreateBucketOperator  # s3
    """
    err = run_probe(_write(tmp_path, src))["error"]
    assert err["kind"] == "missing_module" and err["line"] == _line(src, "# s3")
    assert err["module"].startswith("airflow.providers.amazon")
    assert "Leoflow provides only" in err["hint"]


def test_authoring_error(tmp_path: Path) -> None:
    src = """
    from airflow.sdk import DAG
    from airflow.operators.empty import EmptyOperator

    with DAG("x"):
        EmptyOperator(task_id="a")
        EmptyOperator(task_id="a")  # dup
    """
    dag_file = _write(tmp_path, src)
    err = run_probe(dag_file)["error"]
    assert err["kind"] == "authoring" and "duplicate task_id 'a'" in err["message"]
    assert err["line"] == _line(src, "# dup") and err["path"] == str(dag_file)
    assert err["hint"]


def test_other_exception_reports_type_message_and_line(tmp_path: Path) -> None:
    src = """
    def helper():
        raise ValueError("boom")  # raise

    helper()
    """
    err = run_probe(_write(tmp_path, src))["error"]
    assert err["kind"] == "exception" and err["message"] == "ValueError: boom"
    assert err["line"] == _line(src, "# raise")  # the innermost dag.py frame
    assert "helper" in err["traceback"] and "leoflow" not in err["traceback"]


def test_several_dags_and_a_decorated_dag(tmp_path: Path) -> None:
    src = """
    from airflow.decorators import dag, task
    from airflow import DAG
    from airflow.operators.bash import BashOperator

    for name in ("one", "two"):
        with DAG(name):
            BashOperator(task_id="b", bash_command="true")

    @dag(schedule=None)
    def three():
        @task
        def t():
            return 1
        t()

    three()
    """
    result = run_probe(_write(tmp_path, src))
    assert result["error"] is None
    assert [d["dag_id"] for d in result["dags"]] == ["one", "two", "three"]
    assert result["dags"][2]["tasks"][0]["callable"] == "dag:three.<locals>.t"


def test_file_without_dags(tmp_path: Path) -> None:
    result = run_probe(_write(tmp_path, "X = 1\n"))
    assert result == {"dags": [], "error": None}


def test_timeout(tmp_path: Path) -> None:
    src = """
    import threading
    threading.Event().wait()
    """
    err = run_probe(_write(tmp_path, src), timeout=1)["error"]
    assert err["kind"] == "timeout"


def test_sdk_and_probe_need_only_the_standard_library(tmp_path: Path) -> None:
    """With `python -S` (no site-packages) pydantic is gone, yet the SDK and the probe work."""
    dag_file = _write(tmp_path, GOOD)
    out = tmp_path / "out.json"
    code = (
        "import importlib.util, sys\n"
        "assert importlib.util.find_spec('pydantic') is None\n"
        "import leoflow.sdk\n"
        "from leoflow.compiler.probe import main\n"
        f"sys.exit(main([{str(dag_file)!r}, '--out', {str(out)!r}]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-S", "-c", code],
        env={"PYTHONPATH": str(REPO), "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["error"] is None and result["dags"][0]["dag_id"] == "good"
    assert "pydantic" not in result  # the result is plain JSON


def test_user_threads_and_chdir_do_not_hang_or_misplace_the_result(tmp_path: Path) -> None:
    src = """
    import os, threading
    from airflow.sdk import DAG
    from airflow.operators.empty import EmptyOperator

    threading.Thread(target=threading.Event().wait).start()  # never ends, not a daemon
    os.chdir("/")
    with DAG("t"):
        EmptyOperator(task_id="e")
    """
    result = run_probe(_write(tmp_path, src), timeout=60)
    assert result["error"] is None and result["dags"][0]["dag_id"] == "t"


def test_unknown_name_from_airflow_sdk_gets_the_airflow_hint(tmp_path: Path) -> None:
    src = """
    from airflow.sdk import Asset  # asset
    """
    err = run_probe(_write(tmp_path, src))["error"]
    assert err["kind"] == "exception" and "Asset" in err["message"]
    assert err["line"] == _line(src, "# asset") and "authoring API" in err["hint"]
