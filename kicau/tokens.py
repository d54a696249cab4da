"""Bearer tokens: how they are hashed, what a resolved token says, and its Redis cache.

Tokens are opaque random strings; only their SHA-256 is stored (Cassandra) or cached (Redis), so neither a
database dump nor a cache dump hands out sessions. Cassandra is the record: losing Redis logs nobody out.
"""

from __future__ import annotations

import hashlib
import secrets

import msgspec
from redis.asyncio import Redis

from kicau import keys

TOKEN_CACHE_SECONDS = 3600


class TokenInfo(msgspec.Struct, frozen=True):
    account_id: int | None
    client_id: str
    scopes: list[str]

    def allows(self, scope: str) -> bool:
        """Mastodon's scopes are hierarchical: ``write`` grants ``write:statuses`` and so on."""
        top = scope.split(":", 1)[0]
        return scope in self.scopes or top in self.scopes


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
    return from_cache(await redis.get(keys.token_cache(token_hash)))


async def cache(redis: Redis, token_hash: str, info: TokenInfo) -> None:
    await redis.set(keys.token_cache(token_hash), _encode(info), ex=TOKEN_CACHE_SECONDS)


async def forget(redis: Redis, token_hash: str) -> None:
    await redis.delete(keys.token_cache(token_hash))
