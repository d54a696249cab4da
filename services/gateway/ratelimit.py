"""Request rate limits, kept in Redis so every gateway process shares them.

Each limited request is counted in exactly one bucket, chosen before the route runs:

- ``login`` (``POST /oauth/token``) and ``registration`` (``POST /api/v1/accounts``): per client IP, with their
  own, stricter limits (password guessing costs an Argon2 hash; sign-ups are the spam vector);
- ``account``: any other request with a valid user token, per account (an app token counts per app);
- ``ip``: any other request without a valid token, per client IP.

Windows are fixed (``now // window``), like Mastodon's rack-attack: one ``INCR`` + ``EXPIRE`` pipelined, so a
request costs one Redis round trip. A client may burst up to twice its limit across a window boundary; that is
the price of the single counter. The answer carries ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and
``X-RateLimit-Reset`` (ISO 8601, as Mastodon sends and Mastodon.py parses); beyond the limit it is a 429.

Streams (they have their own per-account cap), health, readiness and metrics are not counted. Requests from
``rate_limit_exempt_networks`` (loopback by default, as Mastodon's own rack-attack safelists localhost) skip the
per-IP buckets only: per-account limits apply from everywhere. Behind a reverse proxy, list it in
``trusted_proxies`` so the client's address is read from ``X-Forwarded-For``. If Redis is unreachable, requests
pass uncounted: losing the limiter must not take the API down.

The token the limiter resolved is left in the request's state, so authentication does not look it up twice.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kicau import keys
from kicau.tokens import TokenInfo
from kicau.web import ApiError
from services.gateway.auth import RESOLVED_TOKEN, resolve
from services.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

TOO_MANY = msgspec.json.encode({"error": "Too many requests"})
EXEMPT_PREFIXES = ("/api/v1/streaming",)
LIMITED_PREFIXES = ("/api/", "/oauth/")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Bucket:
    name: str
    subject: str
    limit: int
    window: int


def is_limited(path: str) -> bool:
    return path.startswith(LIMITED_PREFIXES) and not path.startswith(EXEMPT_PREFIXES)


def _in(address: str, networks: list[IPNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_ip(scope: Scope, trusted_proxies: list[IPNetwork]) -> str:
    """The peer's address; behind trusted proxies, the nearest ``X-Forwarded-For`` hop that is not one."""
    peer = scope.get("client")
    address = str(peer[0]) if peer else "unknown"
    if not trusted_proxies or not _in(address, trusted_proxies):
        return address
    forwarded: list[str] = [value.decode("latin-1") for name, value in scope["headers"] if name == b"x-forwarded-for"]
    hops = [hop.strip() for value in forwarded for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _in(hop, trusted_proxies):
            return hop
    return address


def bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


def reset_header(epoch_seconds: int) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class RateLimitMiddleware:
    """Pure ASGI, so streaming answers and the body limit of the routes are untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._last_warning = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_limited(scope["path"]):
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        settings: GatewaySettings = state.settings
        if not settings.rate_limit_enabled:
            await self.app(scope, receive, send)
            return
        bucket = await self._bucket(scope, state, settings)
        counted = await self._count(state, bucket) if bucket is not None else None
        if counted is None:
            await self.app(scope, receive, send)
            return
        assert bucket is not None
        count, window_end = counted
        headers = [
            (b"x-ratelimit-limit", str(bucket.limit).encode()),
            (b"x-ratelimit-remaining", str(max(0, bucket.limit - count)).encode()),
            (b"x-ratelimit-reset", reset_header(window_end).encode()),
        ]
        if count > bucket.limit:
            retry_after = max(1, window_end - int(time.time()))
            await send({"type": "http.response.start", "status": 429, "headers": [
                *headers, (b"retry-after", str(retry_after).encode()),
                (b"content-type", b"application/json"), (b"content-length", str(len(TOO_MANY)).encode()),
            ]})
            await send({"type": "http.response.body", "body": TOO_MANY})
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *headers]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _bucket(self, scope: Scope, state: Any, settings: GatewaySettings) -> Bucket | None:
        path, method = scope["path"], scope["method"]
        if method == "POST" and path in ("/oauth/token", "/api/v1/accounts"):
            login = path == "/oauth/token"
            return self._ip_bucket(
                scope, settings, "login" if login else "registration",
                settings.rate_limit_login_requests if login else settings.rate_limit_registration_requests,
                settings.rate_limit_login_window_seconds if login else settings.rate_limit_registration_window_seconds,
            )
        token = await self._resolve(scope, state)
        if token is not None:
            subject = f"a:{token.account_id}" if token.account_id is not None else f"c:{token.client_id}"
            return Bucket("account", subject, settings.rate_limit_account_requests, settings.rate_limit_window_seconds)
        return self._ip_bucket(scope, settings, "ip", settings.rate_limit_ip_requests,
                               settings.rate_limit_window_seconds)

    @staticmethod
    def _ip_bucket(scope: Scope, settings: GatewaySettings, name: str, limit: int, window: int) -> Bucket | None:
        address = client_ip(scope, settings.trusted_proxies)
        if _in(address, settings.rate_limit_exempt_networks):
            return None
        return Bucket(name, address, limit, window)

    @staticmethod
    async def _resolve(scope: Scope, state: Any) -> TokenInfo | None:
        value = bearer(scope)
        if value is None:
            return None
        try:
            info: TokenInfo | ApiError = await resolve(state.redis, state.graph, value)
        except ApiError as error:
            info = error  # an invalid token is counted per IP; the route answers 401 without asking again
        scope.setdefault("state", {})[RESOLVED_TOKEN] = (value, info)
        return info if isinstance(info, TokenInfo) else None

    async def _count(self, state: Any, bucket: Bucket) -> tuple[int, int] | None:
        """The bucket's count after this request and the end of its window, or None when Redis failed."""
        now = int(time.time())
        window = now // bucket.window
        key = keys.rate_limit(bucket.name, bucket.subject, window)
        try:
            pipe = state.redis.pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, bucket.window + 1)
            count, _ = await pipe.execute()
        except Exception:
            if time.monotonic() - self._last_warning > 10:
                self._last_warning = time.monotonic()
                log.warning("rate limits unavailable (Redis); requests pass uncounted", exc_info=True)
            return None
        return int(count), (window + 1) * bucket.window
