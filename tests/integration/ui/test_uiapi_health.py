"""GET /api/v2/monitor/health as the UI's Home "Health" panel reads it (all badges green)."""

from __future__ import annotations

from typing import Any

from test_uiapi_schema import assert_valid, schema_validator
from uiapi_seed import UiApi


def _panel(body: dict[str, Any]) -> dict[str, str]:
    """The badges the 3.2.2 bundle draws: dag_processor only when it is not null; green only
    for "healthy" (HealthBadge: ``status === "healthy" ? "success" : "failed"``)."""
    shown = {name: body[name]["status"] for name in ("metadatabase", "scheduler", "triggerer")}
    if body.get("dag_processor"):
        shown["dag_processor"] = body["dag_processor"]["status"]
    return {name: "green" if status == "healthy" else "red" for name, status in shown.items()}


async def test_health_panel_is_green_with_a_beating_scheduler(
    uiapi: UiApi, airflow_openapi: dict[str, Any]
) -> None:
    beat = "2026-03-01T12:00:00Z"
    uiapi.app.state.scheduler_heartbeat = lambda: beat
    body = (await uiapi.get("/api/v2/monitor/health", role=None)).json()
    validator = schema_validator(
        airflow_openapi["v2"], {"$ref": "#/components/schemas/HealthInfoResponse"}
    )
    assert_valid(validator, body, "monitor/health")
    assert _panel(body) == {"metadatabase": "green", "scheduler": "green", "triggerer": "green"}
    assert body["triggerer"]["latest_triggerer_heartbeat"] == beat
    assert body["dag_processor"] is None


async def test_health_panel_turns_red_when_the_scheduler_stops(uiapi: UiApi) -> None:
    uiapi.app.state.scheduler_heartbeat = lambda: None
    body = (await uiapi.get("/api/v2/monitor/health", role=None)).json()
    assert _panel(body) == {"metadatabase": "green", "scheduler": "red", "triggerer": "red"}
