"""Declarative DAGs (`dag:` in leoflow.yaml, or dag.yaml) compile to the same spec shape."""

from __future__ import annotations

import pytest

from leoflow.compiler import compile_project
from leoflow.errors import CompileError, ProjectError

PIPELINE = """\
dag_id: yaml_dag
owner: data
defaults:
  retries: 2
tasks:
  report:
    retries: 7
dag:
  schedule: "0 6 * * *"
  timezone: Europe/Paris
  start_date: 2024-03-01
  params:
    limit: {default: 10, type: integer, minimum: 1}
  tasks:
    fetch:
      type: bash
      bash_command: echo 1
      retries: 0
    shard:
      type: python
      callable: jobs:shard
      args: {n: 3}
      upstream: [fetch]
    merge:
      type: python
      callable: jobs:merge
      inputs:
        parts: [shard, fetch]
        first: shard
      trigger_rule: all_done
    report:
      type: http
      method: POST
      http_conn_id: hooks
      endpoint: /notify
      data: {ok: true}
      upstream: [merge]
    done:
      type: empty
      upstream: [report]
"""


def test_yaml_dag_compiles(make_project):
    root = make_project(PIPELINE, dag_py=None)
    result = compile_project(root)
    spec = result.spec
    assert result.declarative and spec.source_file == "leoflow.yaml"
    assert spec.source == PIPELINE
    assert spec.schedule.expression == "0 6 * * *"
    # Midnight in Paris in March is 23:00 UTC the day before.
    assert spec.start_date.isoformat() == "2024-02-29T23:00:00+00:00"
    assert spec.params["limit"].default == 10
    assert spec.params["limit"].schema_ == {"type": "integer", "minimum": 1}
    merge = spec.task("merge")
    assert merge.upstream == ["fetch", "shard"]
    assert [s.ref.task_id for s in merge.fan_ins["parts"].slots] == ["shard", "fetch"]
    assert merge.xcom_inputs["first"].task_id == "shard"
    assert merge.trigger_rule == "all_done"
    assert spec.task("shard").call_args == {"n": 3}
    # retries: explicit 0 on fetch beats defaults; tasks.report beats defaults.
    assert [spec.task(t).retries for t in ("fetch", "shard", "report")] == [0, 2, 7]
    assert spec.task("report").http.method == "POST"
    assert spec.task("report").http.endpoint == "/notify"
    assert spec.task("done").type == "empty"
    assert spec.task("shard").line == 19


def test_dag_yaml_file(make_project):
    dag_yaml = "schedule: '@once'\ntasks:\n  a: {type: bash, bash_command: 'true'}\n"
    root = make_project("dag_id: sep\n", dag_py=None, dag__yaml=dag_yaml)
    spec = compile_project(root).spec
    assert spec.source_file == "dag.yaml"
    assert spec.schedule.type == "once"
    assert spec.task("a").line == 3


def test_yaml_dag_needs_dag_id(make_project):
    root = make_project("dag:\n  tasks:\n    a: {type: empty}\n", dag_py=None)
    with pytest.raises(CompileError, match="needs a dag_id"):
        compile_project(root)


def test_bad_callable_names_line(make_project):
    text = "dag_id: d\ndag:\n  tasks:\n    a:\n      type: python\n      callable: not-a-ref\n"
    root = make_project(text, dag_py=None)
    with pytest.raises(CompileError) as err:
        compile_project(root)
    assert err.value.line == 6
    assert "module:function" in err.value.message


def test_unknown_input_task(make_project):
    text = "dag_id: d\ndag:\n  tasks:\n    a:\n      type: python\n      callable: m:f\n      inputs: {x: ghost}\n"
    root = make_project(text, dag_py=None)
    with pytest.raises(CompileError, match="ghost") as err:
        compile_project(root)
    assert err.value.line == 4
    assert err.value.path.endswith("leoflow.yaml")


def test_yaml_cycle(make_project):
    text = (
        "dag_id: d\ndag:\n  tasks:\n"
        "    a: {type: empty, upstream: [b]}\n    b: {type: empty, upstream: [a]}\n"
    )
    root = make_project(text, dag_py=None)
    with pytest.raises(CompileError, match="a -> b -> a"):
        compile_project(root)


def test_yaml_unknown_trigger_rule_is_rejected_with_line(make_project):
    text = "dag_id: d\ndag:\n  tasks:\n    a:\n      type: empty\n      trigger_rule: maybe\n"
    root = make_project(text, dag_py=None)
    with pytest.raises(ProjectError) as err:
        compile_project(root)
    assert err.value.line == 6
    assert "trigger_rule" in err.value.field


def test_override_unknown_task_in_yaml_dag(make_project):
    text = "dag_id: d\ntasks:\n  zz: {retries: 1}\ndag:\n  tasks:\n    a: {type: empty}\n"
    root = make_project(text, dag_py=None)
    with pytest.raises(ProjectError, match="'zz'") as err:
        compile_project(root)
    assert err.value.hint == "known task ids: a"
