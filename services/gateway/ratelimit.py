"""Request rate limits, kept in Redis so every gateway process shares them.

Each limited request is counted in exactly one bucket, chosen before the route runs:

- ``login`` (``POST /oauth/token`` and ``POST /oauth/authorize``, which check passwords) and ``registration``
  (``POST /api/v1/accounts``): per client IP, with their own, stricter limits (password guessing costs an
  Argon2 hash; sign-ups are the spam vector);
- ``account``: any other request with a valid user token, per account (an app token counts per app);
- ``ip``: any other request without a valid token, per client IP.

Windows are fixed (``now // window``), like Mastodon's rack-attack: one counter per bucket and window. A client
may burst up to twice its limit across a window boundary; that is the price of the single counter. The answer
carries ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (ISO 8601, as Mastodon sends
and Mastodon.py parses); beyond the limit it is a 429.

Counts are taken from Redis in small leases (``INCRBY`` + ``EXPIRE``, one round trip) and spent in the process:
a lease is at most 16 counts and an eighth of what the window had left, so near the limit every request takes
one count and the figures are exact. Every count a request spends was granted once from the shared counter, so
all the gateway processes together never admit more than the limit; a lease a process does not spend before its
window ends only makes the limit stricter (by at most 15 requests per process), and with several processes
``X-RateLimit-Remaining`` also leaves out what the others hold unspent. Concurrent requests of one bucket wait
for one lease rather than each taking its own. The bearer token is looked up in this process's copies of the
token cache (``kicau/tracked_cache.py``, which Redis invalidates when a token is revoked), so a request of a
known token with a lease in hand costs no round trip at all.

Streams (they have their own per-account cap), health, readiness and metrics are not counted. Requests from
``rate_limit_exempt_networks`` (loopback by default, as Mastodon's own rack-attack safelists localhost) skip the
per-IP buckets only: per-account limits apply from everywhere. Behind a reverse proxy, list it in
``trusted_proxies`` so the client's address is read from ``X-Forwarded-For``. If Redis is unreachable, requests
pass uncounted: losing the limiter must not take the API down.

The token the limiter resolved is left in the request's state, so authentication does not look it up twice.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kicau import keys, resp
from kicau.hot_routes import Answer
from kicau.identity_memo import IdentityMemo
from kicau.tokens import TokenInfo
from kicau.web import ApiError
from services.gateway.auth import RESOLVED_TOKEN, resolve_with
from services.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

TOO_MANY = msgspec.json.encode({"error": "Too many requests"})
EXEMPT_PREFIXES = ("/api/v1/streaming",)
LIMITED_PREFIXES = ("/api/", "/oauth/")
LEASE_MAX = 16  # counts one lease takes at most
LEASE_SHARE = 8  # ... and at most this fraction of what the window had left
MAX_LEASES = 100_000  # buckets with a lease kept in process (about 15 MB at most); the oldest go first

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


@functools.lru_cache(maxsize=64)
def reset_header(epoch_seconds: int) -> str:
    # Cached: every request of a window carries the same value, and formatting it cost ~3% of a request.
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@functools.lru_cache(maxsize=64)
def _reset_value(epoch_seconds: int) -> bytes:
    return reset_header(epoch_seconds).encode()


@functools.lru_cache(maxsize=4096)
def _count_value(count: int) -> bytes:
    # The limit, and the counts left near it, repeat from request to request.
    return b"%d" % count


@dataclass(slots=True)
class _Lease:
    top: int  # the bucket's count in Redis once this lease was taken
    left: int  # counts taken and not spent yet


def lease_size(limit: int, counted: int) -> int:
    """How many counts to take when the bucket is known to have ``counted`` already (0 before its first)."""
    return max(1, min(LEASE_MAX, (limit - counted) // LEASE_SHARE))


@dataclass(slots=True)  # not frozen: one is made on every request, and a frozen one's making costs twice as much
class Admission:
    """A counted request: the headers its answer carries, and the 429 to send instead when it is over."""

    headers: list[tuple[bytes, bytes]]
    refusal: Answer | None


class RateLimitMiddleware:
    """Pure ASGI, so streaming answers and the body limit of the routes are untouched. The counting is the
    application's ``RateLimiter`` (``app.state.limiter``), which hot routes call themselves."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_limited(scope["path"]):
            await self.app(scope, receive, send)
            return
        limiter: RateLimiter = scope["app"].state.limiter
        admission = await limiter.admit(scope)
        if admission is None:
            await self.app(scope, receive, send)
            return
        if admission.refusal is not None:
            await send({"type": "http.response.start", "status": 429, "headers": [
                (b"content-type", admission.refusal.content_type),
                (b"content-length", b"%d" % len(admission.refusal.body)), *admission.refusal.headers,
            ]})
            await send({"type": "http.response.body", "body": admission.refusal.body})
            return
        headers = admission.headers

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *headers]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RateLimiter:
    def __init__(self, state: Any) -> None:
        self._state = state  # the application's state: settings, redis, graph, token copies (filled by the lifespan)
        self._last_warning = 0.0
        self._leases: OrderedDict[str, _Lease] = OrderedDict()  # the bucket's key in its window -> its lease
        self._taking: dict[str, asyncio.Future[None]] = {}  # keys a lease is being taken for
        self._buckets: IdentityMemo[TokenInfo, Bucket] = IdentityMemo(MAX_LEASES)  # each token's bucket
        # (bucket name, subject) -> (window, the bucket's key in that window)
        self._window_keys: dict[tuple[str, str], tuple[int, str]] = {}

    async def admit(self, scope: Scope) -> Admission | None:
        """Count the request in its bucket. None: not counted (limits off, an exempt peer, Redis down)."""
        state = self._state
        settings: GatewaySettings = state.settings
        if not settings.rate_limit_enabled:
            return None
        bucket, counted = await self._bucket_and_count(scope, state, settings)
        if bucket is None or counted is None:
            return None
        count, window_end = counted
        headers = [
            (b"x-ratelimit-limit", _count_value(bucket.limit)),
            (b"x-ratelimit-remaining", _count_value(max(0, bucket.limit - count))),
            (b"x-ratelimit-reset", _reset_value(window_end)),
        ]
        if count > bucket.limit:
            retry_after = max(1, window_end - int(time.time()))
            return Admission(headers, Answer(TOO_MANY, 429, [*headers, (b"retry-after", str(retry_after).encode())]))
        return Admission(headers, None)

    async def _bucket_and_count(
        self, scope: Scope, state: Any, settings: GatewaySettings
    ) -> tuple[Bucket | None, tuple[int, int] | None]:
        """The request's bucket and its count after this request (None: not counted)."""
        path, method = scope["path"], scope["method"]
        if method == "POST" and path in ("/oauth/token", "/oauth/authorize", "/api/v1/accounts"):
            login = path != "/api/v1/accounts"
            bucket = self._ip_bucket(
                scope, settings, "login" if login else "registration",
                settings.rate_limit_login_requests if login else settings.rate_limit_registration_requests,
                settings.rate_limit_login_window_seconds if login else settings.rate_limit_registration_window_seconds,
            )
            return bucket, await self._count(state, bucket) if bucket is not None else None
        value = bearer(scope)
        token: TokenInfo | None = None
        if value is not None:
            token = await self._resolve(scope, state, value)
        if token is not None:
            bucket = self._account_bucket(token, settings)
        else:
            ip_bucket = self._ip_bucket(scope, settings, "ip", settings.rate_limit_ip_requests,
                                        settings.rate_limit_window_seconds)
            if ip_bucket is None:
                return None, None
            bucket = ip_bucket
        return bucket, await self._count(state, bucket)

    def _account_bucket(self, token: TokenInfo, settings: GatewaySettings) -> Bucket:
        """The bucket of a token's account (or app), made once per token the token copies hand out."""
        return self._buckets.get(token, lambda held: Bucket("account", _subject(held),
                                                             settings.rate_limit_account_requests,
                                                             settings.rate_limit_window_seconds))

    @staticmethod
    def _ip_bucket(scope: Scope, settings: GatewaySettings, name: str, limit: int, window: int) -> Bucket | None:
        address = client_ip(scope, settings.trusted_proxies)
        if _in(address, settings.rate_limit_exempt_networks):
            return None
        return Bucket(name, address, limit, window)

    @staticmethod
    async def _resolve(scope: Scope, state: Any, value: str) -> TokenInfo | None:
        """The token, left in the request's state for the route (an invalid one as its 401)."""
        info: TokenInfo | ApiError
        try:
            info = await resolve_with(state, value)
        except ApiError as error:
            info = error  # an invalid token is counted per IP; the route answers 401 without asking again
        scope.setdefault("state", {})[RESOLVED_TOKEN] = (value, info)
        return info if isinstance(info, TokenInfo) else None

    def _key(self, bucket: Bucket) -> tuple[str, int]:
        """The bucket's Redis key in the current window (made once a window), and the end of that window."""
        window = int(time.time()) // bucket.window
        named = (bucket.name, bucket.subject)
        held = self._window_keys.get(named)
        if held is None or held[0] != window:
            held = (window, keys.rate_limit(bucket.name, bucket.subject, window))
            self._window_keys.pop(named, None)
            self._window_keys[named] = held
            if len(self._window_keys) > MAX_LEASES:
                del self._window_keys[next(iter(self._window_keys))]
        return held[1], (window + 1) * bucket.window

    async def _count(self, state: Any, bucket: Bucket) -> tuple[int, int] | None:
        """The bucket's count after this request and the end of its window, or None when Redis failed."""
        key, window_end = self._key(bucket)
        while True:
            lease = self._leases.get(key)
            if lease is not None and lease.left > 0:
                lease.left -= 1
                return lease.top - lease.left, window_end
            taking = self._taking.get(key)
            if taking is None:
                break
            await asyncio.shield(taking)  # another request of this bucket is taking a lease: share it
        size = lease_size(bucket.limit, lease.top if lease is not None else 0)
        taken = self._taking[key] = asyncio.get_running_loop().create_future()
        try:
            top, _ = await resp.round_trip(state.redis, _counting(key, bucket, size), attempts=1)
            top = int(top)
        except Exception:
            self._warn()
            return None
        finally:
            del self._taking[key]
            taken.set_result(None)
        # This request spends the lease's first count; the requests that waited for it, the next ones.
        self._leases[key] = _Lease(top, size - 1)
        self._leases.move_to_end(key)
        if len(self._leases) > MAX_LEASES:
            self._leases.popitem(last=False)
        return top - size + 1, window_end

    def _warn(self) -> None:
        if time.monotonic() - self._last_warning > 10:
            self._last_warning = time.monotonic()
            log.warning("rate limits unavailable (Redis); requests pass uncounted", exc_info=True)


def _counting(key: str, bucket: Bucket, size: int) -> list[bytes]:
    """Take ``size`` counts of the bucket's counter and (re)set its expiry: the window may end meanwhile."""
    framed = key.encode()
    return [resp.command(b"INCRBY", framed, b"%d" % size),
            resp.command(b"EXPIRE", framed, b"%d" % (bucket.window + 1))]


def _subject(token: TokenInfo) -> str:
    return f"a:{token.account_id}" if token.account_id is not None else f"c:{token.client_id}"
