"""Bearer-token authentication and scope checks.

A token is resolved from its Redis cache entry in one GET, or from this process's copy of that entry
(``kicau/tracked_cache.py``: Redis drops the copy when the graph service deletes the entry on revocation, or the
operator's tool as it disables or enables the account); on a miss (new token, or Redis lost) the graph service
reads it from Cassandra and refills the cache. A token of a disabled account, or of one whose sign-up waits for
approval, is refused with 403, as Mastodon's.
Token values are never logged: only their hashes leave this module.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import Depends, Request
from redis.asyncio import Redis
from starlette.types import Scope

from kicau import hot_routes, keys, tokens
from kicau.tokens import TokenInfo
from kicau.tracked_cache import TrackedCache
from kicau.web import ApiError
from services.gateway.upstreams import Caller

# The rate limiter (ratelimit.py) resolves the bearer token before the route runs and leaves
# ``(token value, TokenInfo | ApiError)`` under this key of the request state: one lookup per request.
RESOLVED_TOKEN = "kicau_resolved_token"


def bearer_value(request: Request) -> str | None:
    return bearer_in(request.scope)


def bearer_in(scope: Scope) -> str | None:
    """The request's bearer token; None without an Authorization header, 401 with one of another kind."""
    header = hot_routes.header(scope, b"authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        raise ApiError(401, "The access token is invalid")
    return None


async def resolve(redis: Redis, graph: Caller, token: str, copies: TrackedCache | None = None) -> TokenInfo:
    token_hash = tokens.hash_token(token)
    try:
        if copies is not None:
            info = await copies.get_decoded(keys.token_cache(token_hash), tokens.from_cache)
        else:
            info = await tokens.cached(redis, token_hash)
    except Exception:
        info = None  # Redis down: Cassandra (through the graph service) still knows every token.
    if info is None:
        info = await resolve_uncached(graph, token_hash)
    if info.refusal is not None:
        raise ApiError(403, info.refusal)
    return info


async def resolve_uncached(graph: Caller, token_hash: str) -> TokenInfo:
    """A token the Redis cache did not have: the graph service reads it from Cassandra (and caches it)."""
    answer = await graph.call("GET", f"/internal/tokens/{token_hash}")
    if answer.status_code == 401:
        raise ApiError(401, "The access token is invalid")
    if answer.status_code != 200:
        raise ApiError(503, "Service temporarily unavailable, try again")
    body = answer.json()
    return TokenInfo(account_id=body["account_id"], client_id=body["client_id"], scopes=body["scopes"],
                     disabled=bool(body.get("disabled")), pending=bool(body.get("pending")))


# How many tokens ``ended_sessions`` checks at once: a gateway's thousands of streams are not a burst on the graph.
_SESSION_CHECKS_AT_ONCE = 16


async def ended_sessions(redis: Redis, graph: Caller, token_hashes: list[str]) -> set[str]:
    """Which of these tokens (by hash) no longer open a session: revoked, or of a disabled account. One that cannot
    be told now (the graph service unreachable) is not counted as ended. For the stream hub, after its channel was
    lost with any ``sessions:ended`` message in it (streaming.py): Redis's entries first, the graph service for the
    rest, a few at a time."""
    gate = asyncio.Semaphore(_SESSION_CHECKS_AT_ONCE)

    async def ended(token_hash: str) -> bool:
        async with gate:
            try:
                info = await tokens.cached(redis, token_hash)
            except Exception:
                info = None
            if info is None:
                try:
                    info = await resolve_uncached(graph, token_hash)
                except ApiError as refused:
                    return refused.status_code == 401
                except Exception:
                    return False
            return info.refusal is not None

    verdicts = await asyncio.gather(*(ended(h) for h in token_hashes))
    return {h for h, gone in zip(token_hashes, verdicts, strict=True) if gone}


async def optional_token(request: Request) -> TokenInfo | None:
    return await token_of(request.scope, request.app.state)


async def token_of(scope: Scope, state: Any) -> TokenInfo | None:
    """The request's token, as the rate limiter resolved it (or looked up now); None without one."""
    value = bearer_in(scope)
    if value is None:
        return None
    known = scope.get("state", {}).get(RESOLVED_TOKEN)
    if known is not None and known[0] == value:
        if isinstance(known[1], ApiError):
            raise known[1]
        resolved: TokenInfo = known[1]
        return resolved
    return await resolve_with(state, value)


async def resolve_with(state: Any, token: str) -> TokenInfo:
    """``resolve`` with the application's Redis, graph service and token copies (None where it keeps none)."""
    return await resolve(state.redis, state.graph, token, getattr(state, "token_copies", None))


def checked_user(info: TokenInfo | None, scopes: tuple[str, ...]) -> TokenInfo:
    """A user token that carries one of ``scopes`` (or a parent scope), or the Mastodon error saying why not."""
    if info is None:
        raise ApiError(401, "The access token is invalid")
    if info.account_id is None:
        raise ApiError(422, "This method requires an authenticated user")
    if not any(info.allows(scope) for scope in scopes):
        raise ApiError(403, "This action is outside the authorized scopes")
    return info


async def any_token(request: Request) -> TokenInfo:
    info = await optional_token(request)
    if info is None:
        raise ApiError(401, "The access token is invalid")
    return info


def require(*scopes: str) -> object:
    """A dependency: a user token that carries one of ``scopes`` (or a parent scope)."""

    async def dependency(request: Request) -> TokenInfo:
        return checked_user(await optional_token(request), scopes)

    return Depends(dependency)


OptionalToken = Annotated[TokenInfo | None, Depends(optional_token)]
AnyToken = Annotated[TokenInfo, Depends(any_token)]
FollowUser = Annotated[TokenInfo, require("follow", "write:follows", "write")]
