"""Bearer tokens: how they are hashed, what a resolved token says, and its Redis cache.

Tokens are opaque random strings; only their SHA-256 is stored (Cassandra) or cached (Redis), so neither a
database dump nor a cache dump hands out sessions. Cassandra is the record: losing Redis logs nobody out.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Final

import msgspec
from redis.asyncio import Redis

from kicau import keys, resp

TOKEN_CACHE_SECONDS = 3600
# A token resolved from Cassandra more slowly than this is answered but not cached: it may have read its account
# before the operator disabled it, and would put back an entry the operator's tool has already dropped for the last
# time (services/graph/accounts.py drops them again after waiting longer than this).
FRESH_RESOLUTION_SECONDS: Final = 2.0
# Mastodon's answer to a token of a disabled account, and to its sign-in.
DISABLED_LOGIN: Final = "Your login is currently disabled"
# Mastodon's answer to a token of an account whose sign-up waits for staff's approval (services/graph/sign_ups.py).
PENDING_LOGIN: Final = "Your login is currently pending approval"


class TokenInfo(msgspec.Struct, frozen=True, omit_defaults=True):
    account_id: int | None
    client_id: str
    scopes: list[str]
    # The token's account is disabled by the operator: every request with it is refused (403). Entries cached
    # before the field have none: not disabled.
    disabled: bool = False
    # The account's sign-up waits for staff's approval: refused (403) too, with Mastodon's other answer.
    pending: bool = False

    @property
    def refusal(self) -> str | None:
        """Why every request with the token is refused (403), or None if it is not."""
        return DISABLED_LOGIN if self.disabled else PENDING_LOGIN if self.pending else None

    def allows(self, scope: str) -> bool:
        return granted(scope, self.scopes)


def granted(scope: str, scopes: list[str] | set[str]) -> bool:
    """Whether ``scopes`` grant ``scope``: Mastodon's scopes are hierarchical, so ``write`` grants
    ``write:statuses`` and ``admin:read`` grants ``admin:read:reports`` (``admin`` alone is no scope, and ``read``
    grants no ``admin:read``)."""
    if scope in scopes:
        return True
    head, colon, _ = scope.rpartition(":")
    while colon:
        if head in scopes:
            return True
        head, colon, _ = head.rpartition(":")
    return False


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(TokenInfo).decode


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def from_cache(raw: bytes | str | None) -> TokenInfo | None:
    """A token cache entry as read from Redis (``None``: not cached)."""
    return _decode(raw) if raw else None


async def cached(redis: Redis, token_hash: str) -> TokenInfo | None:
    # Hand-packed on the process's shared connection (kicau/resp.py): redis-py's GET, with its pooled
    # connection, was ~20% of a gateway's CPU to open a stream.
    [raw] = await resp.round_trip(redis, [resp.get(keys.token_cache(token_hash))])
    return from_cache(raw)


async def cache(redis: Redis, token_hash: str, info: TokenInfo) -> None:
    await redis.set(keys.token_cache(token_hash), _encode(info), ex=TOKEN_CACHE_SECONDS)


async def end_streams(redis: Redis, *, token_hash: str | None = None, account_id: int | None = None) -> None:
    """Tell every gateway to end the streams opened with a token (revoked), or with any token of an account
    (disabled): ``keys.SESSIONS_ENDED_CHANNEL``."""
    if token_hash:
        await redis.publish(keys.SESSIONS_ENDED_CHANNEL, f"token:{token_hash}")
    if account_id:
        await redis.publish(keys.SESSIONS_ENDED_CHANNEL, f"account:{account_id}")


def ended_session(raw: bytes) -> tuple[str, str] | None:
    """What an ``end_streams`` message names: ("token", hash) or ("account", id); None if it names neither."""
    kind, _, subject = raw.decode(errors="replace").partition(":")
    return (kind, subject) if kind in ("token", "account") and subject else None


async def forget(redis: Redis, *token_hashes: str) -> None:
    if token_hashes:
        await redis.delete(*(keys.token_cache(token_hash) for token_hash in token_hashes))
