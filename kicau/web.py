"""What every Kicau HTTP service has in common: Mastodon-style errors, health, readiness and metrics.

Errors are always ``{"error": "..."}`` with a 4xx for anything the client sent wrong; a dependency that is
down is a 503, never a 500, so a client knows to retry.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from kicau.metrics import MetricsMiddleware, metrics_response
from kicau.visibility import ANONYMOUS, Reader

log = logging.getLogger("kicau")

ReadinessCheck = Callable[[], Awaitable[None]]


# Rails' words for booleans, as Mastodon reads them (any case); JSON's true and false, 1 and 0.
TRUE_WORDS, FALSE_WORDS = ("1", "t", "true", "y", "yes", "on"), ("0", "f", "false", "n", "no", "off")


def flag(value: Any, name: str) -> bool:
    """A boolean as a client may send it: anything but a boolean, 0, 1 or one of Rails' words is a 422."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in TRUE_WORDS + FALSE_WORDS:
        return value.lower() in TRUE_WORDS
    raise ApiError(422, f"Validation failed: {name} must be true or false")


class ApiError(Exception):
    """A failure the client should see as-is: an HTTP status and a Mastodon error message."""

    def __init__(self, status_code: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.headers = headers


def error_response(status_code: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code, headers=headers)


def describe_validation_error(exc: RequestValidationError) -> str:
    return describe_errors(exc.errors())


def describe_errors(errors: Sequence[Mapping[str, Any]]) -> str:
    """Pydantic's validation errors as one Mastodon-style message (the first five)."""
    parts = []
    for err in errors[:5]:
        location = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{location or 'request'}: {err.get('msg', 'invalid')}")
    return "Validation failed: " + "; ".join(parts)


def redis_ready(app: FastAPI) -> ReadinessCheck:
    """Readiness of the service's Redis (``app.state.redis``, looked up when checked: set in the lifespan)."""

    async def redis_ready() -> None:
        await app.state.redis.ping()

    return redis_ready


def cassandra_ready(app: FastAPI) -> ReadinessCheck:
    """Readiness of the service's Cassandra session (``app.state.session``): a query a coordinator answers."""

    async def cassandra_ready() -> None:
        from kicau.clients import execute  # the driver is heavy; services without Cassandra never import it

        await execute(app.state.session, "SELECT release_version FROM system.local")

    return cassandra_ready


def install_common(
    app: FastAPI, *, service: str, readiness: list[ReadinessCheck] | None = None
) -> None:
    """Error handlers, /healthz, /readyz and /metrics for one service."""
    checks = readiness if readiness is not None else []

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status_code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, describe_validation_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = {404: "Record not found", 405: "Method not allowed"}.get(exc.status_code, str(exc.detail))
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": allowed_methods(request)}
        return error_response(exc.status_code, message, headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        # Engine outages surface here as driver exceptions: the client gets a retryable 503, the log the cause.
        log.exception("unhandled error in %s: %s", service, type(exc).__name__)
        return error_response(503, "Service temporarily unavailable, try again")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> PlainTextResponse:
        return PlainTextResponse("OK")

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        failures: dict[str, Any] = {}
        for check in checks:
            try:
                await check()
            except Exception as exc:
                failures[getattr(check, "__name__", "check")] = f"{type(exc).__name__}: {exc}"
        if failures:
            return JSONResponse({"ready": False, "failures": failures}, status_code=503)
        return JSONResponse({"ready": True})

    app.add_api_route("/metrics", metrics_response, methods=["GET"], include_in_schema=False)
    app.add_middleware(MetricsMiddleware, service=service)


HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> str:
    """Every method the path answers. Starlette's 405 names only the first route that matched the path, so
    a path served by two routes (GET and DELETE of one status) would announce half of its methods. A path that
    a route names literally is that route's: PATCH /api/v1/accounts/update_credentials is not also the GET of an
    account whose id is "update_credentials" (that would answer 404)."""
    routes = request.app.router.routes
    matching = [(m, r) for m in HTTP_METHODS for r in routes
                if r.matches({**request.scope, "method": m})[0] == Match.FULL]
    literal = [(m, r) for m, r in matching if not getattr(r, "param_convertors", None)]
    methods = {m for m, _ in literal or matching}
    return ", ".join(m for m in HTTP_METHODS if m in methods)


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def acting_account_id(value: str | None) -> int:
    """The account a gateway-authenticated request acts for (``X-Kicau-Account``), or 401."""
    if not value:
        raise ApiError(401, "This method requires an authenticated user")
    try:
        return int(value)
    except ValueError as exc:
        raise ApiError(401, "This method requires an authenticated user") from exc


def reader_of(value: str | None) -> Reader:
    """Who reads, from ``X-Kicau-Account``: the gateway sends it with a read made with a user's token, and none
    with an anonymous one."""
    return ANONYMOUS if not value else Reader(acting_account_id(value))


# Headers the gateway sets on internal calls after it has authenticated the bearer token. Internal services
# listen on loopback (or a private network in deploy/) and trust them; they are never accepted from clients.
ACCOUNT_HEADER = "X-Kicau-Account"
CLIENT_HEADER = "X-Kicau-Client"
SCOPES_HEADER = "X-Kicau-Scopes"
NEXT_CURSOR_HEADER = "X-Kicau-Next"
PREV_CURSOR_HEADER = "X-Kicau-Prev"
# Where the next page of a ranking (trending hashtags) starts: its offset.
NEXT_OFFSET_HEADER = "X-Kicau-Next-Offset"
