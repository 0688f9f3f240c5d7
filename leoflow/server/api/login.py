"""Login routes, as Airflow's simple auth manager answers them.

``POST /auth/token`` takes JSON or form ``username``/``password`` (and an optional ``tenant``)
and answers 201 ``{"access_token": ...}``. Failed logins are counted per client IP; over the
limit the route answers 429 before looking at the credentials.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlsplit

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from leoflow.errors import Unauthorized
from leoflow.server.api._common import ok, store_of
from leoflow.server.auth import COOKIE_NAME, Auth, Principal, client_ip
from leoflow.server.errors import BadRequest, RateLimited
from leoflow.server.routing import ApiRoute, validate
from leoflow.store.api import DEFAULT_TENANT

LOGIN_PAGE = "/auth/login"


class LoginBody(BaseModel):
    """Airflow's LoginBody (plus Leoflow's optional tenant)."""

    model_config = ConfigDict(extra="ignore")
    username: str = Field(min_length=1)
    password: str = Field(min_length=1)
    tenant: str = DEFAULT_TENANT


async def _credentials(request: Request) -> LoginBody:
    content_type = request.headers.get("content-type", "")
    data: Any
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        data = {k: v for k, v in form.items() if isinstance(v, str)}
    else:
        raw = await request.body()
        try:
            data = json.loads(raw) if raw else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BadRequest("request body is not valid JSON; send username and password") from None
    if not isinstance(data, dict) or not data.get("username") or not data.get("password"):
        missing = [
            k for k in ("username", "password") if not isinstance(data, dict) or not data.get(k)
        ]
        raise BadRequest(f"{', '.join(missing)}: field required", field=missing[0])
    return validate(LoginBody, data)


async def create_token(request: Request) -> Response:
    """POST /auth/token: username/password -> 201 {"access_token"}."""
    auth: Auth = request.app.state.auth
    client = client_ip(request)
    wait = auth.limiter.retry_after(client)
    if wait:
        raise RateLimited(
            f"too many failed logins from {client}; retry in {wait} s", retry_after=wait
        )
    body = await _credentials(request)
    tenant = body.tenant.strip() or DEFAULT_TENANT
    user = await store_of(request).verify_password(tenant, body.username.strip(), body.password)
    if user is None:
        auth.limiter.failed(client)
        raise Unauthorized("Invalid credentials")
    token = auth.issuer.mint(Principal(username=user.username, tenant=user.tenant, role=user.role))
    return ok({"access_token": token}, 201)


def _safe_next(request: Request) -> str | None:
    target = request.query_params.get("next")
    if not target:
        return None
    parts = urlsplit(target)
    if parts.netloc and parts.netloc != request.url.netloc:
        raise BadRequest("next: must point at this server", field="next")
    if not parts.netloc and not target.startswith("/"):
        raise BadRequest("next: must be a path on this server", field="next")
    return target


async def login(request: Request) -> Response:
    """GET /api/v2/auth/login?next=: 307 to the login page."""
    target = _safe_next(request)
    url = LOGIN_PAGE + (f"?next={quote(target, safe='')}" if target else "")
    return RedirectResponse(url, status_code=307)


async def logout(request: Request) -> Response:
    """GET /api/v2/auth/logout: forget the cookie and go to the login page."""
    response = RedirectResponse(LOGIN_PAGE, status_code=307)
    response.delete_cookie(COOKIE_NAME, path="/")
    return response


root_routes = [
    ApiRoute("/auth/token", create_token, methods=["POST"], permission=None, summary="Log in: username/password -> access_token", tag="Login", status=201, body=LoginBody),
    ApiRoute("/auth/token/cli", create_token, methods=["POST"], permission=None, summary="Log in (CLI)", tag="Login", status=201, body=LoginBody, name="create_token_cli"),
]  # fmt: skip

routes = [
    ApiRoute("/auth/token", create_token, methods=["POST"], permission=None, summary="Log in (alias of /auth/token)", tag="Login", status=201, body=LoginBody, name="create_token_v2"),
    ApiRoute("/auth/login", login, methods=["GET"], permission=None, summary="Redirect to the login page", tag="Login", status=307),
    ApiRoute("/auth/logout", logout, methods=["GET"], permission=None, summary="Log out", tag="Login", status=307),
]  # fmt: skip
