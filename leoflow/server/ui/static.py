"""HTTP routes that serve the unmodified Airflow UI bundle and its login page.

The app factory mounts ``ui_routes(...)`` LAST: every API route comes first, then these.

- ``/static/*``: files of ``airflow/ui/dist`` with exact MIME types, gzip for compressible types,
  and cache headers (hashed ``assets/*`` immutable for a year, ``index.html`` no-cache, the rest
  one hour). A miss is a 404; there is no SPA fallback inside ``/static``.
- ``/auth/login``, ``/auth/static/*`` and every other GET under ``/auth/`` except ``/auth/token``:
  the simple auth manager's stock login SPA.
- ``/api/v1/*``, ``/api/*``, ``/ui/*`` and ``/health``: JSON 404s shaped ``{"detail": ...}``.
- Any other GET: ``index.html`` with ``{{ backend_server_base_url }}`` replaced by the base path
  (a plain byte replacement, nothing else changes), so deep links open in the SPA.

The catch-alls are ``FallbackRoute`` instances, which the call-table check ignores.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import logging
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

from leoflow.server.ui.bundle import UiBundle, load_ui_bundle
from leoflow.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_INSTANCE_NAME = "Leoflow"
LITE_INSTANCE_NAME = "Leoflow Lite"
BASE_URL_PLACEHOLDER = b"{{ backend_server_base_url }}"

#: GET paths that never fall back to the SPA (other routes own them, or they must 404).
SPA_EXCLUDED_PREFIXES = (
    "/api",
    "/ui",
    "/auth/token",
    "/static",
    "/metrics",
    "/docs",
    "/openapi.json",
)
API_V1_REMOVED = (
    "/api/v1 has been removed in Airflow 3, please use its upgraded version /api/v2 instead."
)
HEALTH_MOVED = "Moved in Airflow 3. Please change your monitoring to use /api/v2/monitor/health."

_IMMUTABLE = "public, max-age=31536000, immutable"
_ONE_HOUR = "public, max-age=3600"
_NO_CACHE = "no-cache"
_GZIP_MIN_BYTES = 1024
_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".wasm": "application/wasm",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".ttf": "font/ttf",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".md": "text/markdown; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}
_COMPRESSIBLE = ("text/", "application/json", "application/wasm", "image/svg+xml", "font/ttf")


def content_type_for(name: str) -> str:
    """The Content-Type we send for a bundle file (browsers enforce it for JS modules)."""
    suffix = Path(name).suffix.lower()
    if suffix in _CONTENT_TYPES:
        return _CONTENT_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(name)
    return guessed or "application/octet-stream"


def cache_control_for(rel_path: str) -> str:
    """Hashed ``assets/*`` never change; ``index.html`` must be revalidated; the rest: an hour."""
    if rel_path.startswith("assets/"):
        return _IMMUTABLE
    if rel_path == "index.html":
        return _NO_CACHE
    return _ONE_HOUR


class FallbackRoute(Route):
    """A catch-all route that answers only where no real route does (ignored by call checks).

    Paths under ``excluded`` prefixes do not match at all, so the router keeps looking (and
    ends in its own 404 or 405).
    """

    is_fallback = True

    def __init__(self, path: str, endpoint: Any, *, excluded: tuple[str, ...] = (), **kw: Any):
        super().__init__(path, endpoint, **kw)
        self.excluded = excluded

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is Match.NONE or not self.excluded:
            return match, child
        route_path = self.path_format.format(**child.get("path_params", {}))
        if any(route_path == p or route_path.startswith(p + "/") for p in self.excluded):
            return Match.NONE, {}
        return match, child


@dataclass(frozen=True)
class _FileEntry:
    path: Path
    size: int
    content_type: str
    cache_control: str
    etag: str


class StaticDir:
    """Serves one immutable dist folder; the file list is read once, so no path can escape it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._files: dict[str, _FileEntry] | None = None
        self._gzipped: dict[str, bytes] = {}

    def _index(self) -> dict[str, _FileEntry]:
        if self._files is None:
            files = {}
            for path in self.root.rglob("*"):
                if path.is_file():
                    rel = path.relative_to(self.root).as_posix()
                    stat = path.stat()
                    tag = hashlib.md5(
                        f"{rel}:{stat.st_size}:{stat.st_mtime_ns}".encode()
                    ).hexdigest()
                    files[rel] = _FileEntry(
                        path, stat.st_size, content_type_for(rel), cache_control_for(rel), tag
                    )
            self._files = files
        return self._files

    async def serve(self, request: Request, rel_path: str) -> Response:
        """The file at ``rel_path`` (gzip when the client accepts it and it pays), or 404."""
        entry = self._index().get(rel_path)
        if entry is None:
            return Response("Not Found", status_code=404, media_type="text/plain")
        use_gzip = _accepts_gzip(request) and _compressible(entry)
        etag = f'"{entry.etag}{"-gz" if use_gzip else ""}"'
        headers = {"Cache-Control": entry.cache_control, "ETag": etag}
        if _compressible(entry):
            headers["Vary"] = "Accept-Encoding"
        if etag in _if_none_match(request):
            return Response(status_code=304, headers=headers)
        if use_gzip:
            body = self._gzipped.get(rel_path)
            if body is None:
                # Compress once, off the event loop; the bundle never changes under us.
                body = await anyio.to_thread.run_sync(_gzip_file, entry.path)
                self._gzipped[rel_path] = body
            headers["Content-Encoding"] = "gzip"
            return Response(body, headers=headers, media_type=entry.content_type)
        return FileResponse(entry.path, headers=headers, media_type=entry.content_type)


def _gzip_file(path: Path) -> bytes:
    return gzip.compress(path.read_bytes(), compresslevel=6, mtime=0)


def _compressible(entry: _FileEntry) -> bool:
    return entry.size >= _GZIP_MIN_BYTES and entry.content_type.startswith(_COMPRESSIBLE)


def _accepts_gzip(request: Request) -> bool:
    for item in request.headers.get("accept-encoding", "").split(","):
        coding, _, params = item.partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            q = params.strip().removeprefix("q=").strip() or "1"
            try:
                return float(q) > 0
            except ValueError:
                return False
    return False


def _if_none_match(request: Request) -> set[str]:
    value = request.headers.get("if-none-match", "")
    return {tag.strip().removeprefix("W/") for tag in value.split(",") if tag.strip()}


class IndexPage:
    """An SPA shell (``index.html``) whose only template variable is filled by replacement."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._template: bytes | None = None

    def render(self, base_path: str) -> bytes:
        """The page bytes with ``{{ backend_server_base_url }}`` set to ``base_path``."""
        if self._template is None:
            self._template = self.path.read_bytes()
        return self._template.replace(BASE_URL_PLACEHOLDER, html.escape(base_path).encode())

    def response(self, request: Request) -> Response:
        """The rendered page for this request's base path, never cached without revalidation."""
        body = self.render(base_path_of(request))
        return HTMLResponse(body, headers={"Cache-Control": _NO_CACHE})


def base_path_of(request: Request) -> str:
    """The app's base path ("/" by default; the ASGI root_path behind a prefix), ending in "/"."""
    root = request.scope.get("app_root_path") or request.scope.get("root_path") or ""
    return root.rstrip("/") + "/"


def _json_404(detail: str) -> Any:
    async def endpoint(request: Request) -> Response:
        return JSONResponse({"detail": detail}, status_code=404)

    return endpoint


def ui_routes(
    settings: Settings, bundle: UiBundle | None = None, *, instance_name: str | None = None
) -> list[BaseRoute]:
    """The private ``/ui`` API, then the UI bundle and login page; mount after every API route.

    ``bundle`` defaults to the one ``leoflow setup`` extracted under ``settings.home``; if none is
    there, the SPA paths answer 503 with a page saying to run ``leoflow setup`` (the API keeps
    working). ``instance_name`` only labels that page: the SPA itself reads its instance name
    from ``/ui/config``, never from an edited bundle.
    """
    from leoflow.server.ui.api import routes as private_api  # the /ui/* data routes

    if bundle is None:
        bundle = load_ui_bundle(settings.home)
    api_404s = _api_not_found_routes()
    if bundle is None:
        log.warning("Airflow UI bundle not found under %s; run `leoflow setup`", settings.ui_dir)
        missing = _missing_bundle_routes(instance_name or DEFAULT_INSTANCE_NAME)
        return [*private_api, *api_404s, *missing]
    return [*private_api, *_static_routes(bundle), *api_404s, *_spa_routes(bundle)]


def _static_routes(bundle: UiBundle) -> list[BaseRoute]:
    ui_static = StaticDir(bundle.dist_dir)
    login_static = StaticDir(bundle.login_dist_dir)

    async def static_file(request: Request) -> Response:
        return await ui_static.serve(request, request.path_params["path"])

    async def login_static_file(request: Request) -> Response:
        return await login_static.serve(request, request.path_params["path"])

    return [
        Route("/static/{path:path}", static_file, methods=["GET"], name="ui_static"),
        Route("/auth/static/{path:path}", login_static_file, methods=["GET"], name="login_static"),
    ]


def _api_not_found_routes() -> list[BaseRoute]:
    return [
        FallbackRoute("/api/v1/{path:path}", _json_404(API_V1_REMOVED), methods=_ALL_METHODS),
        FallbackRoute("/api/{path:path}", _json_404("API route not found"), methods=_ALL_METHODS),
        FallbackRoute("/ui/{path:path}", _json_404("Not Found"), methods=_ALL_METHODS),
        FallbackRoute("/health", _json_404(HEALTH_MOVED), methods=["GET"]),
    ]


def _spa_routes(bundle: UiBundle) -> list[BaseRoute]:
    main_index = IndexPage(bundle.dist_dir / "index.html")
    login_index = IndexPage(bundle.login_dist_dir / "index.html")

    async def login_page(request: Request) -> Response:
        return login_index.response(request)

    async def spa_page(request: Request) -> Response:
        return main_index.response(request)

    return [
        Route("/auth/login", login_page, methods=["GET"], name="login_page"),
        FallbackRoute("/auth/{path:path}", login_page, methods=["GET"], excluded=("/auth/token",)),
        FallbackRoute("/{path:path}", spa_page, methods=["GET"], excluded=SPA_EXCLUDED_PREFIXES),
    ]


def _missing_bundle_routes(instance_name: str) -> list[BaseRoute]:
    title = html.escape(instance_name)
    page = (
        f"<!doctype html><title>{title}</title><h1>{title}: the web UI is not installed</h1>"
        "<p>Run <code>leoflow setup</code> to download the Airflow UI bundle, then restart.</p>"
    )

    async def missing(request: Request) -> Response:
        return HTMLResponse(page, status_code=503, headers={"Cache-Control": _NO_CACHE})

    return [FallbackRoute("/{path:path}", missing, methods=["GET"], excluded=SPA_EXCLUDED_PREFIXES)]
