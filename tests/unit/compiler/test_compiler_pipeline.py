"""compile_project with canned probe outputs: selection, leoflow.yaml overlay, graph checks."""

from __future__ import annotations

import json

import pytest
from compiler_unit_helpers import FakeProbe, raw_dag, raw_task

from leoflow.compiler import compile_project
from leoflow.compiler.pipeline import probe_error
from leoflow.errors import CompileError, ProjectError
from leoflow.spec import dumps


def _chain() -> list[dict]:
    return [
        raw_task("extract", line=10),
        raw_task(
            "load",
            line=14,
            upstream=["extract"],
            xcom_inputs={"rows": {"task_id": "extract", "key": "return_value"}},
        ),
    ]


def test_single_dag_compiles_with_runtime_and_source(make_project):
    root = make_project(
        "dependencies: ['requests==2.32.3']\npython_version: '3.12'\n", dag_py="print('dag')\n"
    )
    probe = FakeProbe([raw_dag("etl", _chain())])
    result = compile_project(root, probe=probe, python="/opt/py")
    spec = result.spec
    assert spec.dag_id == "etl"
    assert [t.task_id for t in spec.tasks] == ["extract", "load"]
    assert spec.runtime.python_version == "3.12"
    assert spec.runtime.dependencies == ["requests==2.32.3"]
    assert spec.runtime.image is None
    assert spec.source == "print('dag')\n"
    assert spec.source_file == "dag.py"
    assert spec.version == "h" + spec.content_hash[:12]
    assert probe.calls == [(root / "dag.py", "/opt/py")]
    assert result.found_dag_ids == ("etl",)


def test_dag_version_label_does_not_change_hash(make_project):
    root = make_project()
    probe = FakeProbe([raw_dag("etl", _chain())])
    a = compile_project(root, probe=probe).spec
    b = compile_project(root, probe=probe, dag_version="v7").spec
    assert b.version == "v7"
    assert a.content_hash == b.content_hash


def test_same_inputs_give_identical_bytes(make_project):
    root = make_project("owner: data\n")
    probe = FakeProbe([raw_dag("etl", list(reversed(_chain())))])
    first = dumps(compile_project(root, probe=probe).spec)
    second = dumps(compile_project(root, probe=probe).spec)
    assert first == second
    assert json.loads(first)["tasks"][0]["task_id"] == "extract"


def test_dag_id_selects_among_several(make_project):
    root = make_project("dag_id: b\n")
    probe = FakeProbe([raw_dag("a", _chain()), raw_dag("b", [raw_task("only")])])
    assert compile_project(root, probe=probe).spec.dag_id == "b"


def test_several_dags_without_dag_id_lists_them(make_project):
    root = make_project("")
    probe = FakeProbe([raw_dag("a", _chain()), raw_dag("b", [raw_task("only")])])
    with pytest.raises(CompileError) as err:
        compile_project(root, probe=probe)
    assert "a, b" in err.value.message
    assert "dag_id" in err.value.hint


def test_dag_id_not_found_lists_found_ids(make_project):
    root = make_project("owner: x\ndag_id: missing\n")
    probe = FakeProbe([raw_dag("a", _chain()), raw_dag("b", [raw_task("only")])])
    with pytest.raises(ProjectError) as err:
        compile_project(root, probe=probe)
    assert "'missing'" in err.value.message and "a, b" in err.value.message
    assert err.value.line == 2


def test_dag_id_mismatch_names_both(make_project):
    root = make_project("dag_id: from_yaml\n")
    probe = FakeProbe([raw_dag("from_py", _chain(), line=7)])
    with pytest.raises(ProjectError) as err:
        compile_project(root, probe=probe)
    assert "from_yaml" in err.value.message and "from_py" in err.value.message
    assert "line 7" in err.value.message
    assert err.value.line == 1
    assert err.value.path.endswith("leoflow.yaml")


def test_no_dag(make_project):
    root = make_project()
    with pytest.raises(CompileError, match="no DAG found"):
        compile_project(root, probe=FakeProbe([]))


def test_yaml_replaces_description_owner_tags(make_project):
    root = make_project("description: from yaml\nowner: data\ntags: [z, a]\n")
    probe = FakeProbe([raw_dag("etl", _chain(), description="py", owner="py", tags=["py"])])
    spec = compile_project(root, probe=probe).spec
    assert (spec.description, spec.owner, spec.tags) == ("from yaml", "data", ["a", "z"])


def test_dag_py_values_kept_when_yaml_is_silent(make_project):
    root = make_project("")
    probe = FakeProbe([raw_dag("etl", _chain(), description="py", owner="py", tags=["py"])])
    spec = compile_project(root, probe=probe).spec
    assert (spec.description, spec.owner, spec.tags) == ("py", "py", ["py"])


def test_task_field_precedence(make_project):
    yaml_text = (
        "defaults:\n  retries: 2\n  pool: shared\n  execution_timeout_seconds: 60\n"
        "tasks:\n  b:\n    retries: 9\n"
    )
    root = make_project(yaml_text)
    tasks = [
        # a: retries set explicitly in dag.py beats defaults; pool came from default_args.
        raw_task("a", retries=5, pool="from_default_args", explicit=("retries",)),
        # b: tasks.b beats the explicit value.
        raw_task("b", retries=4, explicit=("retries",), upstream=["a"]),
        # c: nothing explicit: defaults fill in over default_args/built-ins.
        raw_task("c", retries=1, upstream=["a"]),
    ]
    spec = compile_project(root, probe=FakeProbe([raw_dag("d", tasks)])).spec
    assert [spec.task(t).retries for t in "abc"] == [5, 9, 2]
    assert spec.task("a").pool == "shared"
    assert spec.task("c").execution_timeout_seconds == 60


def test_env_merge_order(make_project):
    yaml_text = (
        "env: {A: project, B: project, C: project, D: project}\n"
        "defaults:\n  env: {B: defaults, C: defaults, D: defaults}\n"
        "tasks:\n  t:\n    env: {D: override}\n"
    )
    root = make_project(yaml_text)
    task = raw_task("t", env={"C": "task", "D": "task"})
    spec = compile_project(root, probe=FakeProbe([raw_dag("d", [task])])).spec
    assert spec.task("t").env == {"A": "project", "B": "defaults", "C": "task", "D": "override"}


def test_resources_and_placement_from_yaml(make_project):
    yaml_text = (
        "defaults:\n  resources: {requests: {cpu: 100m}}\n"
        "tasks:\n  big:\n    resources: {limits: {memory: 4Gi}}\n"
        "    placement: {node_selector: {pool: gpu}}\n"
        "    output_schema: {type: integer}\n"
    )
    root = make_project(yaml_text)
    spec = compile_project(
        root, probe=FakeProbe([raw_dag("d", [raw_task("big"), raw_task("s")])])
    ).spec
    assert spec.task("big").resources.limits.memory == "4Gi"
    assert spec.task("big").placement.node_selector == {"pool": "gpu"}
    assert spec.task("big").output_schema == {"type": "integer"}
    assert spec.task("s").resources.requests.cpu == "100m"


def test_override_for_unknown_task_lists_known_ids(make_project):
    root = make_project("dag_id: d\ntasks:\n  extract: {retries: 1}\n  nope:\n    retries: 3\n")
    with pytest.raises(ProjectError) as err:
        compile_project(root, probe=FakeProbe([raw_dag("d", _chain())]))
    assert "'nope'" in err.value.message
    assert err.value.line == 4
    assert "extract, load" in err.value.hint


def test_duplicate_task_ids_name_both_lines(make_project):
    root = make_project()
    tasks = [raw_task("a", line=5), raw_task("a", line=9)]
    with pytest.raises(CompileError) as err:
        compile_project(root, probe=FakeProbe([raw_dag("d", tasks)]))
    assert "duplicate task_id 'a'" in err.value.message and "line 5" in err.value.message
    assert err.value.line == 9


def test_cycle_is_printed(make_project):
    root = make_project()
    tasks = [
        raw_task("a", line=4, upstream=["c"]),
        raw_task("b", line=5, upstream=["a"]),
        raw_task("c", line=6, upstream=["b"]),
    ]
    with pytest.raises(CompileError) as err:
        compile_project(root, probe=FakeProbe([raw_dag("d", tasks)]))
    assert "a -> b -> c -> a" in err.value.message


def test_unknown_upstream(make_project):
    root = make_project()
    with pytest.raises(CompileError, match=r"unknown task\(s\) \['ghost'\]"):
        compile_project(root, probe=FakeProbe([raw_dag("d", [raw_task("a", upstream=["ghost"])])]))


def test_unknown_trigger_rule_names_task_line_and_choices(make_project):
    root = make_project()
    tasks = [raw_task("a", line=12, trigger_rule="sometimes")]
    with pytest.raises(CompileError) as err:
        compile_project(root, probe=FakeProbe([raw_dag("d", tasks)]))
    assert "unknown trigger_rule 'sometimes'" in err.value.message
    assert err.value.line == 12
    assert err.value.field == "tasks.a.trigger_rule"
    assert "none_failed_min_one_success" in err.value.hint


def test_bad_cron_and_timezone(make_project):
    root = make_project()
    bad_cron = raw_dag("d", [raw_task("a")], schedule={"type": "cron", "expression": "every day"})
    with pytest.raises(CompileError, match="neither a cron expression"):
        compile_project(root, probe=FakeProbe([bad_cron]))
    bad_tz = raw_dag("d", [raw_task("a")], timezone="Mars/Olympus")
    with pytest.raises(CompileError, match="unknown timezone"):
        compile_project(root, probe=FakeProbe([bad_tz]))


def test_missing_dockerfile_setting(make_project):
    root = make_project("dockerfile: docker/Dockerfile\n")
    with pytest.raises(ProjectError, match="does not exist") as err:
        compile_project(root, probe=FakeProbe([raw_dag("d", [raw_task("a")])]))
    assert err.value.line == 1


def test_probe_error_is_raised_with_location(make_project):
    root = make_project()
    error = {
        "kind": "syntax",
        "message": "invalid syntax",
        "path": str(root / "dag.py"),
        "line": 3,
        "hint": None,
        "module": None,
    }
    with pytest.raises(CompileError) as err:
        compile_project(root, probe=FakeProbe(error=error))
    assert err.value.line == 3 and err.value.path.endswith("dag.py")
    assert "syntax" in err.value.hint


def test_missing_module_hint_mentions_leoflow_yaml():
    err = probe_error(
        {
            "kind": "missing_module",
            "message": "No module named 'pandas.io'",
            "path": None,
            "line": 2,
            "module": "pandas.io",
        },
        "dag.py",
    )
    assert "pandas" in err.message
    assert 'dependencies: ["pandas"]' in err.hint
    assert str(err).startswith("dag.py:2: ")


def test_missing_dag_py_is_project_error(make_project):
    root = make_project("dag_id: d\n", dag_py=None)
    with pytest.raises(ProjectError, match=r"no dag\.py"):
        compile_project(root, probe=FakeProbe([]))


def test_non_utf8_dag_file(make_project):
    root = make_project()
    (root / "dag.py").write_bytes(b"x = '\xff'\n")
    with pytest.raises(CompileError, match="not UTF-8") as err:
        compile_project(root, probe=FakeProbe([raw_dag("d", [raw_task("a")])]))
    assert err.value.path.endswith("dag.py")


def test_dag_without_tasks(make_project):
    root = make_project()
    with pytest.raises(CompileError, match="has no tasks"):
        compile_project(root, probe=FakeProbe([raw_dag("d", [])]))


def test_crash_shows_the_tail_of_the_output():
    err = probe_error(
        {
            "kind": "crash",
            "message": "the probe process exited with code -9",
            "path": "dag.py",
            "traceback": "line1\nKilled",
        },
        "dag.py",
    )
    assert err.message.endswith("Killed")
    assert "--python" in err.hint
