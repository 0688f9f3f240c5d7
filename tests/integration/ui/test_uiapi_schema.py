"""Every /ui body on seeded data validates against the pinned wheel's ``_private_ui.yaml``.

OpenAPI 3.1 schemas are JSON Schema 2020-12; each response schema is checked with the spec's
``components`` beside it (so ``$ref`` resolves) and with formats (date-time, uuid) enforced.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from uiapi_seed import T0, UiApi, chain_spec, run_dag

from leoflow.store.api import Role

# (operation path in the spec, concrete URL); every GET of the 3.2 private API but one.
CASES = [
    ("/ui/auth/menus", "/ui/auth/menus"),
    ("/ui/auth/me", "/ui/auth/me"),
    ("/ui/config", "/ui/config"),
    ("/ui/connections/hook_meta", "/ui/connections/hook_meta"),
    ("/ui/dags", "/ui/dags?dag_runs_limit=14&limit=50&offset=0&tags_match_mode=any&exclude_stale=true&order_by=dag_display_name"),
    ("/ui/dags", "/ui/dags?limit=10&is_favorite=true"),
    ("/ui/dags/{dag_id}/latest_run", "/ui/dags/grp/latest_run"),
    ("/ui/dags/{dag_id}/latest_run", "/ui/dags/empty/latest_run"),
    ("/ui/dependencies", "/ui/dependencies"),
    ("/ui/dashboard/historical_metrics_data", "/ui/dashboard/historical_metrics_data?start_date=2020-01-01T00:00:00Z"),
    ("/ui/dashboard/dag_stats", "/ui/dashboard/dag_stats"),
    ("/ui/dags/{dag_id}/dagRuns/{dag_run_id}/deadlines", "/ui/dags/grp/dagRuns/ok/deadlines"),
    ("/ui/structure/structure_data", "/ui/structure/structure_data?dag_id=grp&external_dependencies=false&version_number=1"),
    ("/ui/backfills", "/ui/backfills?dag_id=grp&active=true"),
    ("/ui/grid/structure/{dag_id}", "/ui/grid/structure/grp?include_upstream=false&include_downstream=false&limit=10&order_by=-run_after"),
    ("/ui/grid/runs/{dag_id}", "/ui/grid/runs/grp?limit=10&order_by=-run_after"),
    ("/ui/gantt/{dag_id}/{run_id}", "/ui/gantt/grp/bad"),
    ("/ui/calendar/{dag_id}", "/ui/calendar/grp?granularity=hourly"),
    ("/ui/teams", "/ui/teams"),
    ("/ui/next_run_assets/{dag_id}", "/ui/next_run_assets/grp"),
    ("/ui/partitioned_dag_runs", "/ui/partitioned_dag_runs?dag_id=grp"),
]  # fmt: skip
# Not listed: /ui/pending_partitioned_dag_run/{dag_id}/{partition_key} answers 404 (Leoflow has
# no partitioned runs), which test_uiapi_private checks; /ui/grid/ti_summaries is NDJSON (below).


def response_validator(spec: dict[str, Any], path: str, method: str = "get") -> Any:
    """A validator for the 200 JSON body of one operation."""
    content = spec["paths"][path][method]["responses"]["200"]["content"]
    schema = content["application/json"]["schema"]
    return schema_validator(spec, schema)


def schema_validator(spec: dict[str, Any], schema: dict[str, Any]) -> Any:
    """A validator for ``schema`` with the spec's components beside it."""
    root = {**schema, "components": spec["components"]}
    return Draft202012Validator(root, format_checker=FormatChecker())


def assert_valid(validator: Any, body: Any, where: str) -> None:
    """Fail listing every schema error of ``body``."""
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    detail = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]
    assert not detail, f"{where} does not match the spec:\n" + "\n".join(detail[:20])


async def seed(uiapi: UiApi) -> None:
    """Grouped DAG with a success, a failed and a running run; a DAG without runs."""
    store, tenant = uiapi.store, uiapi.tenant
    await store.register_version(tenant, chain_spec("grp", 4, group_every=2, tags=["x"]))
    await store.register_version(tenant, chain_spec("empty", 1))
    await run_dag(store, tenant, "grp", "ok")
    await run_dag(store, tenant, "grp", "bad", fail={"g0.t001"}, after=T0 + timedelta(hours=1))
    await run_dag(store, tenant, "grp", "live", finish=False, after=T0 + timedelta(hours=2))
    await store.create_user(tenant, "viewer", "pw-123456789", Role.VIEWER)


def test_the_cases_cover_every_json_get_of_the_private_api(
    airflow_openapi: dict[str, Any],
) -> None:
    gets = {p for p, ops in airflow_openapi["ui"]["paths"].items() if "get" in ops}
    skipped = {"/ui/pending_partitioned_dag_run/{dag_id}/{partition_key}"}
    assert gets - {p for p, _ in CASES} - skipped == {"/ui/grid/ti_summaries/{dag_id}"}


@pytest.mark.parametrize(("op", "url"), CASES, ids=[u for _, u in CASES])
async def test_body_matches_private_spec(
    uiapi: UiApi, airflow_openapi: dict[str, Any], op: str, url: str
) -> None:
    await seed(uiapi)
    response = await uiapi.get(url)
    assert response.status_code == 200, response.text
    assert_valid(response_validator(airflow_openapi["ui"], op), response.json(), url)


async def test_ndjson_lines_match_grid_ti_summaries(
    uiapi: UiApi, airflow_openapi: dict[str, Any]
) -> None:
    await seed(uiapi)
    spec = airflow_openapi["ui"]
    validator = schema_validator(spec, {"$ref": "#/components/schemas/GridTISummaries"})
    response = await uiapi.get("/ui/grid/ti_summaries/grp?run_ids=live&run_ids=bad&run_ids=ok")
    lines = response.text.splitlines()
    assert len(lines) == 3
    for line in lines:
        assert_valid(validator, json.loads(line), "ti_summaries line")
    states = {ti["state"] for ti in json.loads(lines[0])["task_instances"]}
    assert "running" in states and None in states  # the live run: one running, rest no status


async def test_token_refresh_matches_private_spec(
    uiapi: UiApi, airflow_openapi: dict[str, Any]
) -> None:
    response = await uiapi.post("/ui/auth/token", json={"token_type": "cli"})
    validator = response_validator(airflow_openapi["ui"], "/ui/auth/token", "post")
    assert_valid(validator, response.json(), "/ui/auth/token")
