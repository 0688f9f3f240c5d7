"""The table of HTTP calls the pinned Airflow UI bundle can make, and a check against our routes.

The bundle embeds Airflow's generated TypeScript client, minified into literals such as
``method:`GET`,url:`/api/v2/dags/{dag_id}```; a regex over ``assets/*.js`` lists them. Two calls
are hand-written instead: the grid's streaming ``fetch(`${X.BASE}/ui/grid/ti_summaries/${e}?...`)``
(also present in the generated client) and the HITL review plugin's
``get(`${X.BASE}/hitl-review/sessions/find`)``, which the UI makes only when a plugin of that name
is installed. Both forms are extracted, so a new pin is checked with no hand-kept list.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from starlette.routing import BaseRoute, Host, Match, Mount

_CLIENT_CALL = re.compile(r"method:`([A-Z]+)`,url:`(/[^`]*)`")
# fetch(`${oL.BASE}/ui/...${e}?${a}`) and axios-style x.get(`${oL.BASE}/...`)
_HAND_WRITTEN = re.compile(
    r"(?:\bfetch|\.(get|post|put|patch|delete))\(`\$\{[\w$]+\.BASE\}(/[^`?]*)"
)
_TEMPLATE_EXPR = re.compile(r"\$\{[^}]*\}")
_PARAM = re.compile(r"\{[^}/]+\}")
_SAMPLE_VALUES = ("1", "sample")


class UiCall(NamedTuple):
    """One call the UI can make: an HTTP method and an OpenAPI-style path template."""

    method: str
    path: str

    @property
    def requires_plugin(self) -> bool:
        """True for plugin APIs (outside /api and /ui), called only when that plugin exists."""
        return not self.path.startswith(("/api/", "/ui/"))


def extract_calls(dist_dir: Path) -> list[UiCall]:
    """Every (method, path template) in ``dist_dir/assets/*.js``, sorted and de-duplicated."""
    sources = [p.read_text(encoding="utf-8", errors="replace") for p in _js_files(dist_dir)]
    client = {UiCall(m, url) for text in sources for m, url in _CLIENT_CALL.findall(text)}
    calls = set(client)
    for text in sources:
        for verb, raw in _HAND_WRITTEN.findall(text):
            calls.add(_name_params(UiCall((verb or "get").upper(), raw), client))
    return sorted(calls, key=lambda c: (c.path, c.method))


def _js_files(dist_dir: Path) -> list[Path]:
    files = sorted((Path(dist_dir) / "assets").glob("*.js"))
    if not files:
        raise FileNotFoundError(f"no assets/*.js under {dist_dir}: not an Airflow UI dist")
    return files


def _name_params(call: UiCall, client: set[UiCall]) -> UiCall:
    """Turn ``${expr}`` into ``{name}``, borrowing names from a generated call of the same shape."""
    shape = _TEMPLATE_EXPR.sub("{}", call.path)
    for known in client:
        if known.method == call.method and _PARAM.sub("{}", known.path) == shape:
            return known
    count = iter(range(1, 100))
    return UiCall(call.method, _TEMPLATE_EXPR.sub(lambda _: f"{{param{next(count)}}}", call.path))


def missing_routes(calls: Iterable[Sequence[str]], app_routes: Sequence[BaseRoute]) -> list[UiCall]:
    """The calls no route in ``app_routes`` serves (SPA/404 fallbacks do not count).

    A call's ``{param}`` slots are filled with sample values and matched with Starlette's own
    route matching, so ``{x}``, ``{x:path}``, ``{x:int}``, mounts and nested routers all behave
    as they would for a real request; a Mount owns its whole prefix, so a route listed after
    ``Mount("/api/v2")`` under that prefix does not count.
    """
    missing = []
    for method, path in calls:
        call = UiCall(method.upper(), path)
        if not any(_served(call, sample, app_routes) for sample in _SAMPLE_VALUES):
            missing.append(call)
    return missing


def _served(call: UiCall, sample: str, routes: Sequence[BaseRoute]) -> bool:
    concrete = _PARAM.sub(sample, call.path)
    scope: dict[str, Any] = {
        "type": "http",
        "method": call.method,
        "path": concrete,
        "root_path": "",
        "headers": [],
        "query_string": b"",
    }
    return _matches_any(scope, routes)


def _matches_any(scope: dict[str, Any], routes: Sequence[BaseRoute]) -> bool:
    for route in routes:
        if getattr(route, "is_fallback", False) or isinstance(route, Host):
            continue
        match, child = route.matches(scope)
        if match is Match.NONE:
            continue
        if isinstance(route, Mount):
            inner = getattr(route, "routes", None) or []
            # A mounted app without a routing table (e.g. StaticFiles) answers everything below.
            if not inner and not hasattr(route.app, "routes"):
                return True
            # A Mount claims every path under its prefix, as Starlette's router does: routes
            # listed after it are never reached, so its answer is final.
            return _matches_any({**scope, **child}, inner)
        elif match is Match.FULL:
            return True
    return False
