"""Smoke: the fixture works end to end (push, list)."""

from __future__ import annotations

from tests.integration.server.conftest import Api, make_spec


async def test_push_and_list(api: Api) -> None:
    response = await api.push(make_spec("smoke"))
    assert response.status_code == 201, response.text
    listed = await api.get("/api/v2/dags")
    assert listed.status_code == 200, listed.text
    assert [d["dag_id"] for d in listed.json()["dags"]] == ["smoke"]
