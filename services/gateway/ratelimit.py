"""Request rate limits, kept in Redis so every gateway process shares them.

Each limited request is counted in exactly one bucket, chosen before the route runs:

- ``login`` (``POST /oauth/token``) and ``registration`` (``POST /api/v1/accounts``): per client IP, with their
  own, stricter limits (password guessing costs an Argon2 hash; sign-ups are the spam vector);
- ``account``: any other request with a valid user token, per account (an app token counts per app);
- ``ip``: any other request without a valid token, per client IP.

Windows are fixed (``now // window``), like Mastodon's rack-attack: one ``INCR`` + ``EXPIRE`` pipelined, so a
request costs one Redis round trip, which also looks the bearer token up when its bucket can be guessed (the
token was seen before). A client may burst up to twice its limit across a window boundary; that is the price of
the single counter. The answer carries ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and
``X-RateLimit-Reset`` (ISO 8601, as Mastodon sends and Mastodon.py parses); beyond the limit it is a 429.

Streams (they have their own per-account cap), health, readiness and metrics are not counted. Requests from
``rate_limit_exempt_networks`` (loopback by default, as Mastodon's own rack-attack safelists localhost) skip the
per-IP buckets only: per-account limits apply from everywhere. Behind a reverse proxy, list it in
``trusted_proxies`` so the client's address is read from ``X-Forwarded-For``. If Redis is unreachable, requests
pass uncounted: losing the limiter must not take the API down.

The token the limiter resolved is left in the request's state, so authentication does not look it up twice.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kicau import keys, resp, tokens
from kicau.hot_routes import Answer
from kicau.tokens import TokenInfo
from kicau.web import ApiError
from services.gateway.auth import RESOLVED_TOKEN, resolve_uncached
from services.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

TOO_MANY = msgspec.json.encode({"error": "Too many requests"})
EXEMPT_PREFIXES = ("/api/v1/streaming",)
LIMITED_PREFIXES = ("/api/", "/oauth/")
MAX_REMEMBERED_TOKENS = 100_000  # token -> bucket guesses kept (about 15 MB at most)

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


@dataclass(frozen=True, slots=True)
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
        self._state = state  # the application's state: settings, redis, graph (filled in by the lifespan)
        self._last_warning = 0.0
        # Token hash -> the account subject its bucket had last time. Only a guess of which bucket to count in
        # the same round trip as the token lookup: the token is still looked up in Redis on every request, so a
        # revoked token is refused at once as before; a wrong guess is undone and counted again.
        self._subjects: dict[str, str] = {}

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
            (b"x-ratelimit-limit", str(bucket.limit).encode()),
            (b"x-ratelimit-remaining", str(max(0, bucket.limit - count)).encode()),
            (b"x-ratelimit-reset", reset_header(window_end).encode()),
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
        if method == "POST" and path in ("/oauth/token", "/api/v1/accounts"):
            login = path == "/oauth/token"
            bucket = self._ip_bucket(
                scope, settings, "login" if login else "registration",
                settings.rate_limit_login_requests if login else settings.rate_limit_registration_requests,
                settings.rate_limit_login_window_seconds if login else settings.rate_limit_registration_window_seconds,
            )
            return bucket, await self._count(state, bucket) if bucket is not None else None
        value = bearer(scope)
        token: TokenInfo | None = None
        if value is not None:
            token_hash = tokens.hash_token(value)
            guessed = self._subjects.get(token_hash)
            if guessed is not None:
                bucket = self._account_bucket(guessed, settings)
                key, window_end = self._key(bucket)
                looked_up = await self._look_up_and_count(state, token_hash, bucket, key)
                if looked_up is not None:
                    cached, count = looked_up
                    counted = (count, window_end)
                    info = cached if cached is not None else await self._resolve_uncached(state, token_hash)
                    scope.setdefault("state", {})[RESOLVED_TOKEN] = (value, info)
                    if isinstance(info, TokenInfo) and _subject(info) == guessed:
                        return bucket, counted
                    # Revoked, or now another account's bucket: this request was counted where it does not belong.
                    self._subjects.pop(token_hash, None)
                    await self._uncount(state, bucket, key)
                    token = info if isinstance(info, TokenInfo) else None
                else:
                    token = await self._resolve(scope, state, value, token_hash)
            else:
                token = await self._resolve(scope, state, value, token_hash)
            if token is not None:
                self._remember(token_hash, _subject(token))
        if token is not None:
            bucket = self._account_bucket(_subject(token), settings)
        else:
            ip_bucket = self._ip_bucket(scope, settings, "ip", settings.rate_limit_ip_requests,
                                        settings.rate_limit_window_seconds)
            if ip_bucket is None:
                return None, None
            bucket = ip_bucket
        return bucket, await self._count(state, bucket)

    @staticmethod
    def _account_bucket(subject: str, settings: GatewaySettings) -> Bucket:
        return Bucket("account", subject, settings.rate_limit_account_requests, settings.rate_limit_window_seconds)

    def _remember(self, token_hash: str, subject: str) -> None:
        if token_hash not in self._subjects and len(self._subjects) >= MAX_REMEMBERED_TOKENS:
            del self._subjects[next(iter(self._subjects))]  # the oldest entry (dicts keep insertion order)
        self._subjects[token_hash] = subject

    @staticmethod
    def _ip_bucket(scope: Scope, settings: GatewaySettings, name: str, limit: int, window: int) -> Bucket | None:
        address = client_ip(scope, settings.trusted_proxies)
        if _in(address, settings.rate_limit_exempt_networks):
            return None
        return Bucket(name, address, limit, window)

    @staticmethod
    async def _resolve(scope: Scope, state: Any, value: str, token_hash: str) -> TokenInfo | None:
        info: TokenInfo | ApiError | None
        try:
            info = await tokens.cached(state.redis, token_hash)
        except Exception:
            info = None  # Redis down: Cassandra (through the graph service) still knows every token.
        if info is None:
            info = await RateLimiter._resolve_uncached(state, token_hash)
        scope.setdefault("state", {})[RESOLVED_TOKEN] = (value, info)
        return info if isinstance(info, TokenInfo) else None

    @staticmethod
    async def _resolve_uncached(state: Any, token_hash: str) -> TokenInfo | ApiError:
        try:
            return await resolve_uncached(state.graph, token_hash)
        except ApiError as error:
            return error  # an invalid token is counted per IP; the route answers 401 without asking again

    @staticmethod
    def _key(bucket: Bucket) -> tuple[str, int]:
        """The bucket's Redis key in the current window, and the end of that window."""
        window = int(time.time()) // bucket.window
        return keys.rate_limit(bucket.name, bucket.subject, window), (window + 1) * bucket.window

    @staticmethod
    async def _look_up_and_count(
        state: Any, token_hash: str, bucket: Bucket, key: str
    ) -> tuple[TokenInfo | None, int] | None:
        """The token's cache entry and the bucket's count, in one round trip; None when Redis failed."""
        try:
            # Hand-packed and parsed in bulk (kicau/resp.py): this round trip precedes every request. One
            # attempt: INCR must not be repeated on a fresh connection.
            raw, count, _ = await resp.round_trip(state.redis, [
                resp.get(keys.token_cache(token_hash)), *_counting(key, bucket)], attempts=1)
            return tokens.from_cache(raw), int(count)
        except Exception:
            return None  # the ordinary path retries the lookup (and the graph service answers without Redis)

    async def _uncount(self, state: Any, bucket: Bucket, key: str) -> None:
        try:
            pipe = state.redis.pipeline(transaction=False)
            pipe.decr(key)
            pipe.expire(key, bucket.window + 1)  # the window may have ended since: no counter without expiry
            await pipe.execute()
        except Exception:
            self._warn()

    async def _count(self, state: Any, bucket: Bucket) -> tuple[int, int] | None:
        """The bucket's count after this request and the end of its window, or None when Redis failed."""
        key, window_end = self._key(bucket)
        try:
            count, _ = await resp.round_trip(state.redis, _counting(key, bucket), attempts=1)
        except Exception:
            self._warn()
            return None
        return int(count), window_end

    def _warn(self) -> None:
        if time.monotonic() - self._last_warning > 10:
            self._last_warning = time.monotonic()
            log.warning("rate limits unavailable (Redis); requests pass uncounted", exc_info=True)


def _counting(key: str, bucket: Bucket) -> list[bytes]:
    """INCR the bucket's counter and (re)set its expiry: the window may end while a request is counted."""
    framed = key.encode()
    return [resp.command(b"INCR", framed), resp.command(b"EXPIRE", framed, b"%d" % (bucket.window + 1))]


def _subject(token: TokenInfo) -> str:
    return f"a:{token.account_id}" if token.account_id is not None else f"c:{token.client_id}"
