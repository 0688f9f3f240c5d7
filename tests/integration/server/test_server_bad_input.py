"""Bad input on every core /api/v2 route, enumerated from the route table.

Each route with path parameters answers unknown, SQL-ish and path-traversal ids with 400, 404
or 422 (never 200 or 500) and leaves the data intact; each route with a body model answers
broken JSON with 400 and wrong bodies with 422 whose ``loc`` names the body field. Routes of
the UI's own /api/v2 extras (``leoflow.server.ui``) are tested with the UI package.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from leoflow.server.app import api_routes
from leoflow.server.openapi import iter_api_routes
from leoflow.server.routing import ApiRoute
from leoflow.store.api import Role
from tests.integration.server.conftest import Api, make_spec

PREFIX = "/api/v2"


def _core(route: ApiRoute) -> bool:
    return route.endpoint.__module__.startswith("leoflow.server.api.")


CORE = [(PREFIX + path, route) for path, route in iter_api_routes(api_routes()) if _core(route)]
WITH_IDS = [
    (method, path)
    for path, route in CORE
    if "{" in path
    for method in sorted((route.methods or set()) - {"HEAD"})
]
WITH_BODY = [
    (method, path)
    for path, route in CORE
    if route.body_model is not None and route.permission is not None
    for method in sorted((route.methods or set()) - {"HEAD", "GET"})
]
HOSTILE = ["missing-id", "x'; DROP TABLE dags; --", "../../etc/passwd", "1 OR 1=1", "%00", "~~"]
KNOWN = {
    "dag_id": "etl",
    "dag_run_id": "r1",
    "task_id": "extract",
    "map_index": "-1",
    "variable_key": "v",
    "connection_id": "c",
    "pool_name": "p",
    "username": "someone",
    "xcom_key": "k",
}


def _fill(path: str, values: dict[str, str], default: str) -> str:
    def one(match: re.Match[str]) -> str:
        name, conv = match[1], match[2]
        if conv in ("int", "sint"):
            return values.get(name, "987654")
        return quote(values.get(name, default), safe="")

    return re.sub(r"{([^}:]+)(?::([a-z]+))?}", one, path)


async def _seed(api: Api) -> None:
    assert (await api.push(make_spec("etl"))).status_code == 201
    await api.trigger("etl", dag_run_id="r1")
    assert (await api.post(f"{PREFIX}/variables", json={"key": "v", "value": 1})).status_code == 201
    conn = {"connection_id": "c", "conn_type": "http", "host": "example.com"}
    assert (await api.post(f"{PREFIX}/connections", json=conn)).status_code == 201
    assert (await api.post(f"{PREFIX}/pools", json={"name": "p", "slots": 2})).status_code == 201
    user = {"username": "someone", "password": "long-enough-1", "role": "viewer"}
    assert (await api.post(f"{PREFIX}/leoflow/users", json=user)).status_code == 201


def test_the_table_covers_the_routes_that_take_ids_and_bodies() -> None:
    assert ("DELETE", f"{PREFIX}/dags/{{dag_id}}") in WITH_IDS
    assert ("POST", f"{PREFIX}/dags/{{dag_id}}/favorite") in WITH_IDS
    assert ("POST", f"{PREFIX}/connections/test") in WITH_BODY
    assert ("PATCH", f"{PREFIX}/pools/{{pool_name}}") in WITH_BODY
    assert len(WITH_IDS) >= 40 and len(WITH_BODY) >= 20


@pytest.mark.parametrize("ident", HOSTILE)
async def test_unknown_and_hostile_ids_are_404_or_refused(api: Api, ident: str) -> None:
    await _seed(api)
    before = (await api.get(f"{PREFIX}/dags")).json()
    for method, path in WITH_IDS:
        url = _fill(path, {}, ident)
        response = await api.http.request(method, url, headers=api.headers(), json={})
        assert response.status_code in (400, 404, 405, 422), (method, url, response.text)
        assert "detail" in response.json(), (method, url)
    assert (await api.get(f"{PREFIX}/dags")).json() == before
    assert (await api.get(f"{PREFIX}/variables/v")).json()["value"] == "1"
    assert (await api.get(f"{PREFIX}/pools/p")).json()["slots"] == 2


async def test_unknown_leaf_ids_under_known_parents_are_404(api: Api) -> None:
    await _seed(api)
    for method, path in WITH_IDS:
        # Every id known except the last one in the path.
        names = re.findall(r"{([^}:]+)", path)
        values = {n: KNOWN[n] for n in names[:-1] if n in KNOWN}
        url = _fill(path, values, "missing-id")
        response = await api.http.request(method, url, headers=api.headers(), json={})
        if path.endswith("/logs/{try_number:int}"):
            # As Airflow: a try of an existing task instance with no log file is 200 "no logs".
            assert response.status_code == 200
            assert response.json()["content"][0]["event"] == "No logs available for this attempt."
        elif method in ("GET", "DELETE"):
            assert response.status_code == 404, (method, url, response.text)
        else:
            assert response.status_code in (400, 404, 422), (method, url, response.text)


@pytest.mark.parametrize(("method", "path"), WITH_BODY, ids=[f"{m} {p}" for m, p in WITH_BODY])
async def test_bodies_broken_or_wrong_are_400_or_422_naming_the_field(
    api: Api, method: str, path: str
) -> None:
    await _seed(api)
    url = _fill(path, KNOWN, "x")
    headers = {**api.headers(Role.ADMIN), "Content-Type": "application/json"}
    broken = await api.http.request(method, url, headers=headers, content=b'{"a": ')
    assert broken.status_code == 400, broken.text
    assert "not valid JSON" in broken.json()["detail"]

    not_object = await api.http.request(method, url, headers=headers, content=b"[1, 2]")
    assert not_object.status_code == 422, not_object.text
    assert not_object.json()["detail"][0]["loc"][0] == "body"

    unknown = await api.http.request(method, url, headers=headers, json={"zzz_unknown": [1]})
    assert unknown.status_code == 422, unknown.text
    errors = unknown.json()["detail"]
    assert all(e["loc"][0] == "body" and len(e["loc"]) >= 2 for e in errors), errors
    named = {e["loc"][1] for e in errors}
    assert "zzz_unknown" in named or any(e["type"] == "missing" for e in errors), errors


async def test_register_names_the_bad_spec_field_and_wrong_types_name_theirs(api: Api) -> None:
    await _seed(api)
    url = f"{PREFIX}/leoflow/dags/etl/versions"
    broken = await api.http.post(url, headers=api.headers(), content=b"{")
    assert broken.status_code == 400
    empty = await api.http.post(url, headers=api.headers(), json={})
    assert empty.status_code == 400 and "dag_id" in empty.json()["detail"]
    slots = await api.patch(f"{PREFIX}/pools/p", json={"name": "p", "slots": "many"})
    assert slots.status_code == 422 and slots.json()["detail"][0]["loc"] == ["body", "slots"]
    date = await api.post(f"{PREFIX}/dags/etl/dagRuns", json={"logical_date": "yesterday"})
    assert date.status_code == 422
    assert date.json()["detail"][0]["loc"] == ["body", "logical_date"]
    limit = await api.get(f"{PREFIX}/dags?limit=-1")
    assert limit.status_code == 422 and limit.json()["detail"][0]["loc"] == ["query", "limit"]
    order = await api.get(f"{PREFIX}/dags?order_by=password")
    assert order.status_code == 400 and "order_by" in order.json()["detail"]
