"""Bad input through the real CLI: a clear message naming file:line or field, a non-zero exit,
and no traceback unless --debug."""

from __future__ import annotations

import re

import pytest

YAML = "dag_id: demo\ndependencies: []\n"
HEADER = "from airflow.sdk import DAG, task\nfrom airflow.providers.standard.operators.bash import BashOperator\n\n"


def _fails(result, *needles: str) -> str:
    """Assert a clean failure; return stderr+stdout for further checks."""
    output = result.stderr + result.stdout
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    assert "error:" in result.stderr, output
    for needle in needles:
        assert needle in output, f"{needle!r} not in:\n{output}"
    return output


def test_syntax_error_names_line(cli, project):
    root = project(leoflow__yaml=YAML, dag__py=HEADER + "with DAG('demo'):\n    x = (1,\n")
    out = _fails(cli("compile", str(root)))
    assert re.search(r"dag\.py:[56]\b", out), out


def test_missing_module_says_how_to_declare_it(cli, project):
    dag = (
        "import leoflow_surely_missing_pkg\n"
        + HEADER
        + "with DAG('demo'):\n    BashOperator(task_id='a', bash_command='true')\n"
    )
    root = project(leoflow__yaml=YAML, dag__py=dag)
    out = _fails(
        cli("compile", str(root)), "leoflow_surely_missing_pkg", "dependencies", "leoflow.yaml"
    )
    assert "dag.py:1" in out


def test_no_dag(cli, project):
    root = project(leoflow__yaml=YAML, dag__py=HEADER + "X = 1\n")
    _fails(cli("compile", str(root)), "no DAG found", "dag.py")


def test_several_dags_without_dag_id(cli, project):
    dag = HEADER + "".join(
        f"with DAG('{d}'):\n    BashOperator(task_id='a', bash_command='true')\n"
        for d in ("one", "two")
    )
    root = project(leoflow__yaml="dependencies: []\n", dag__py=dag)
    _fails(cli("compile", str(root)), "one, two", "dag_id")


def test_dag_id_not_found_among_several(cli, project):
    dag = HEADER + "".join(
        f"with DAG('{d}'):\n    BashOperator(task_id='a', bash_command='true')\n"
        for d in ("one", "two")
    )
    root = project(leoflow__yaml=YAML, dag__py=dag)
    _fails(cli("compile", str(root)), "'demo'", "one, two", "leoflow.yaml:1")


def test_dag_id_mismatch(cli, project):
    dag = HEADER + "with DAG('other'):\n    BashOperator(task_id='a', bash_command='true')\n"
    root = project(leoflow__yaml=YAML, dag__py=dag)
    _fails(cli("compile", str(root)), "'demo'", "'other'", "leoflow.yaml:1", "declares")


def test_duplicate_task_ids(cli, project):
    dag = HEADER + (
        "with DAG('demo'):\n"
        "    BashOperator(task_id='a', bash_command='true')\n"
        "    BashOperator(task_id='a', bash_command='false')\n"
    )
    root = project(leoflow__yaml=YAML, dag__py=dag)
    out = _fails(cli("compile", str(root)), "'a'", "dag.py:")
    assert "duplicate" in out.lower()


def test_cycle_is_printed(cli, project):
    dag = HEADER + (
        "with DAG('demo'):\n"
        "    a = BashOperator(task_id='a', bash_command='true')\n"
        "    b = BashOperator(task_id='b', bash_command='true')\n"
        "    c = BashOperator(task_id='c', bash_command='true')\n"
        "    a >> b >> c >> a\n"
    )
    root = project(leoflow__yaml=YAML, dag__py=dag)
    out = _fails(cli("compile", str(root)), "cycle")
    assert re.search(r"\b(a -> b -> c -> a|b -> c -> a -> b|c -> a -> b -> c)\b", out), out


def test_unknown_trigger_rule(cli, project):
    dag = HEADER + (
        "with DAG('demo'):\n"
        "    @task(trigger_rule='sometimes')\n"
        "    def a():\n"
        "        return 1\n"
        "    a()\n"
    )
    root = project(leoflow__yaml=YAML, dag__py=dag)
    out = _fails(cli("compile", str(root)), "sometimes", "trigger_rule", "dag.py:")
    assert "all_done" in out  # lists the valid rules


def test_argument_neither_json_nor_output(cli, project):
    dag = HEADER + (
        "import threading\n"
        "with DAG('demo'):\n"
        "    @task\n"
        "    def use(lock, n: int = 1):\n"
        "        return n\n"
        "    use(threading.Lock(), n=2)\n"
    )
    root = project(leoflow__yaml=YAML, dag__py=dag)
    _fails(cli("compile", str(root)), "lock", "dag.py:9")


@pytest.mark.parametrize(
    ("yaml_text", "needles"),
    [
        (
            "dag_id: demo\ncolour: blue\n",
            ["leoflow.yaml:2", "unknown key 'colour'", "dependencies"],
        ),
        ("dag_id: demo\ndefaults:\n  retries: many\n", ["leoflow.yaml:3", "defaults.retries"]),
        ("dag_id: demo\ndependencies: 5\n", ["leoflow.yaml:2", "dependencies"]),
    ],
    ids=["unknown-key", "wrong-type", "wrong-type-list"],
)
def test_bad_leoflow_yaml(cli, project, yaml_text, needles):
    dag = HEADER + "with DAG('demo'):\n    BashOperator(task_id='a', bash_command='true')\n"
    root = project(leoflow__yaml=yaml_text, dag__py=dag)
    _fails(cli("compile", str(root)), *needles)


def test_override_for_unknown_task_lists_known_ids(cli, project):
    yaml_text = YAML + "tasks:\n  a: {retries: 1}\n  ghost:\n    retries: 2\n"
    dag = HEADER + (
        "with DAG('demo'):\n"
        "    BashOperator(task_id='a', bash_command='true')\n"
        "    BashOperator(task_id='b', bash_command='true')\n"
    )
    root = project(leoflow__yaml=yaml_text, dag__py=dag)
    _fails(cli("compile", str(root)), "'ghost'", "leoflow.yaml:5", "known task ids: a, b")


def test_missing_dag_py(cli, project):
    root = project(leoflow__yaml=YAML)
    _fails(cli("compile", str(root)), "no dag.py", "leoflow init")


def test_validate_reports_the_same_errors(cli, project):
    root = project(leoflow__yaml=YAML, dag__py=HEADER + "X = 1\n")
    _fails(cli("validate", str(root)), "no DAG found")


def test_debug_shows_the_traceback(cli, project):
    root = project(leoflow__yaml=YAML)
    result = cli("--debug", "compile", str(root))
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "ProjectError" in result.stderr


def test_push_without_build_is_refused(cli, project):
    root = project(leoflow__yaml=YAML)
    _fails(cli("compile", str(root), "--push"), "--push needs --build")


def test_build_needs_an_image_name(cli, project):
    dag = HEADER + "with DAG('demo'):\n    BashOperator(task_id='a', bash_command='true')\n"
    root = project(leoflow__yaml=YAML, dag__py=dag)
    _fails(cli("compile", str(root), "--build"), "--build needs an image name", "registry.image")
    assert not (root / "dag.json").exists()
