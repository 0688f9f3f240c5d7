"""A small synchronous client of Leoflow's HTTP API, used by the CLI and the benchmarks.

HTTP errors become the matching ``LeoflowError`` (401 Unauthorized, 404 NotFound...), carrying
the server's ``detail`` so the CLI can print it as is.
"""

from __future__ import annotations

from typing import Any

import httpx

from leoflow.errors import (
    Conflict,
    Forbidden,
    LeoflowError,
    NotFound,
    SpecError,
    Unauthorized,
    Unavailable,
)

_ERRORS: dict[int, type[LeoflowError]] = {
    400: SpecError,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    503: Unavailable,
}


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return response.text[:500] or response.reason_phrase
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}" for d in detail
        )
    return str(detail)


class ApiClient:
    """Calls one Leoflow server as one user."""

    def __init__(self, server: str, token: str | None = None, *, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.server = server.rstrip("/")
        self._http = httpx.Client(base_url=self.server, headers=headers, timeout=timeout)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request; raise the matching LeoflowError for 4xx/5xx answers."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise Unavailable(
                f"cannot reach {self.server}: {exc}",
                hint="check --server / LEOFLOW_SERVER and that the server is running",
            ) from exc
        if response.status_code >= 400:
            cls = _ERRORS.get(response.status_code, LeoflowError)
            hint = (
                "get a token with `leoflow auth create-token`"
                if response.status_code == 401
                else None
            )
            raise cls(f"{method} {path} -> {response.status_code}: {_detail(response)}", hint=hint)
        return response

    def get(self, path: str, **params: Any) -> Any:
        """GET returning the decoded JSON."""
        clean = {k: v for k, v in params.items() if v is not None}
        return self.request("GET", path, params=clean).json()

    def post(self, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        """POST a JSON body."""
        return self.request("POST", path, json=body, **kwargs)

    def login(self, username: str, password: str, tenant: str | None = None) -> str:
        """An access token for these credentials."""
        body = {"username": username, "password": password}
        if tenant:
            body["tenant"] = tenant
        return self.post("/auth/token", body).json()["access_token"]
