"""The committed JSON Schemas in docs/schemas match the models (regenerate on drift)."""

from __future__ import annotations

import json

import jsonschema

from leoflow.compiler import schemas


def test_committed_schemas_are_current():
    stale = schemas.stale()
    assert stale == [], f"{stale} drifted: run `python -m leoflow.compiler.schemas`"


def test_schemas_are_valid_draft_2020_12(tmp_path):
    for name in schemas.GENERATORS:
        schema = json.loads(schemas.render(name))
        jsonschema.Draft202012Validator.check_schema(schema)


def test_stale_detects_edits(tmp_path):
    schemas.write(tmp_path)
    assert schemas.stale(tmp_path) == []
    (tmp_path / "dag.schema.json").write_text("{}\n")
    assert schemas.stale(tmp_path) == ["dag.schema.json"]


def test_leoflow_schema_validates_a_real_config():
    schema = json.loads(schemas.render("leoflow.schema.json"))
    good = {"dag_id": "etl", "python_version": "3.11", "tasks": {"a": {"retries": 1}}}
    jsonschema.validate(good, schema)
    bad = {"dag_id": "etl", "colour": "blue"}
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(bad))
