"""The OpenAPI document, generated from the route table, and a self-contained /docs page.

Every ``ApiRoute`` contributes one operation: its summary, tag, permission (as the required
role), path parameters, request body (the pydantic model's JSON Schema) and success status.
Response shapes are Airflow's and named by ``x-airflow-schema`` (the schema name in Airflow's
own v2 spec) instead of being copied here. Both routes are public: the document holds no data.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount

from leoflow import __version__
from leoflow.server.auth import _LOWEST_ROLE
from leoflow.server.routing import ApiRoute

_PARAM = re.compile(r"{([^}:]+)(?::([^}]+))?}")


def iter_api_routes(routes: list[BaseRoute], prefix: str = "") -> list[tuple[str, ApiRoute]]:
    """Every ApiRoute with its full path, walking mounts."""
    found: list[tuple[str, ApiRoute]] = []
    for route in routes:
        if isinstance(route, ApiRoute):
            found.append((prefix + route.path, route))
        elif isinstance(route, Mount) and route.routes:
            found.extend(iter_api_routes(list(route.routes), prefix + route.path))
    return found


def _operation(path: str, route: ApiRoute, method: str, schemas: dict[str, Any]) -> dict[str, Any]:
    params = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "integer" if conv in ("int", "sint") else "string"},
        }
        for name, conv in _PARAM.findall(path)
    ]
    op: dict[str, Any] = {
        "operationId": f"{route.operation_id}_{method}".replace(":", "_").replace("/", "_"),
        "summary": route.summary,
        "tags": [route.tag],
        "parameters": params,
        "responses": {
            str(route.status): {"description": "Success"},
            "default": {"description": 'Error: {"detail": ...}'},
        },
    }
    if route.response_schema:
        op["responses"][str(route.status)]["x-airflow-schema"] = route.response_schema
    if route.permission is None:
        op["security"] = []
    else:
        op["x-leoflow-role"] = _LOWEST_ROLE[route.permission].value
    if route.body_model is not None:
        name = route.body_model.__name__
        schema = route.body_model.model_json_schema(ref_template="#/components/schemas/{model}")
        for def_name, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(def_name, definition)
        schemas.setdefault(name, schema)
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
        }
    return op


def build_document(routes: list[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every ApiRoute in ``routes``."""
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {}
    for path, route in iter_api_routes(routes):
        clean = _PARAM.sub(lambda m: "{" + m.group(1) + "}", path)
        for method in sorted(route.methods or []):
            if method == "HEAD":
                continue
            paths.setdefault(clean, {})[method.lower()] = _operation(
                path, route, method.lower(), schemas
            )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Leoflow API",
            "version": __version__,
            "description": "Airflow 3 compatible /api/v2 plus Leoflow's own routes. "
            "Get a token from POST /auth/token and send it as `Authorization: Bearer <token>`.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"HTTPBearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"HTTPBearer": []}],
    }


async def openapi_endpoint(request: Request) -> Response:
    """GET /openapi.json."""
    document = getattr(request.app.state, "openapi", None)
    if document is None:
        document = build_document(list(request.app.routes))
        request.app.state.openapi = document
    return JSONResponse(document)


_DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Leoflow API</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem;color:#222}
h1{margin-bottom:.2rem} .tag{margin-top:1.6rem;border-bottom:1px solid #ccc}
.op{display:flex;gap:.8rem;padding:.25rem 0;font-size:.92rem}
.m{font-weight:700;width:4.5rem;text-transform:uppercase}
.get{color:#1769aa}.post{color:#2e7d32}.patch{color:#b26a00}.delete{color:#c62828}
code{background:#f4f4f4;padding:0 .3rem}.role{color:#777;margin-left:auto}
details{margin-left:5.3rem;font-size:.85rem} pre{background:#f7f7f7;padding:.6rem;overflow:auto}
</style></head><body>
<h1>Leoflow API</h1><p id="info"></p><div id="ops">Loading <code>openapi.json</code>...</div>
<script>
fetch("openapi.json").then(r => r.json()).then(doc => {
  document.getElementById("info").textContent = doc.info.description + " Version " + doc.info.version + ".";
  const byTag = {};
  for (const [path, ops] of Object.entries(doc.paths)) for (const [m, op] of Object.entries(ops))
    (byTag[op.tags[0]] = byTag[op.tags[0]] || []).push([m, path, op]);
  const root = document.getElementById("ops"); root.textContent = "";
  for (const tag of Object.keys(byTag).sort()) {
    const h = document.createElement("h2"); h.className = "tag"; h.textContent = tag; root.append(h);
    for (const [m, path, op] of byTag[tag]) {
      const row = document.createElement("div"); row.className = "op";
      const role = op.security && op.security.length === 0 ? "public" : "role: " + (op["x-leoflow-role"] || "any");
      const shape = op.responses && Object.values(op.responses)[0]["x-airflow-schema"];
      row.innerHTML = `<span class="m ${m}"></span><code></code><span></span><span class="role"></span>`;
      row.children[0].textContent = m; row.children[1].textContent = path;
      row.children[2].textContent = op.summary + (shape ? " -> " + shape : "");
      row.children[3].textContent = role; root.append(row);
      if (op.requestBody) {
        const d = document.createElement("details"), s = document.createElement("summary"), pre = document.createElement("pre");
        const ref = op.requestBody.content["application/json"].schema["$ref"].split("/").pop();
        s.textContent = "body: " + ref; pre.textContent = JSON.stringify(doc.components.schemas[ref], null, 2);
        d.append(s, pre); root.append(d);
      }
    }
  }
});
</script></body></html>
"""


async def docs_endpoint(request: Request) -> Response:
    """GET /docs: a page rendering /openapi.json with no external assets (the host may be offline)."""
    return HTMLResponse(_DOCS_HTML)
