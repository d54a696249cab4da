"""What the gateway's hot routes (kicau/hot_routes.py) keep of the middleware stack they skip: the request is
counted by the rate limiter (a 429 beyond the limit), its token is checked for the route's scopes where the
route needs one, and whatever it answers, errors included, carries the rate-limit headers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import Scope

from kicau.hot_routes import Answer, failure_answer
from kicau.tokens import TokenInfo
from services.gateway.auth import checked_user, token_of
from services.gateway.ratelimit import RateLimiter

Respond = Callable[[Any, TokenInfo], Awaitable[Answer]]
RespondToAnyone = Callable[[Any], Awaitable[Answer]]


async def counted(scope: Scope, respond: RespondToAnyone) -> Answer:
    """``respond(app_state)``'s answer, counted by the rate limiter as the middleware counts a request."""
    state = scope["app"].state
    limiter: RateLimiter = state.limiter
    admission = await limiter.admit(scope)
    if admission is not None and admission.refusal is not None:
        return admission.refusal
    try:
        answer = await respond(state)
    except Exception as error:
        failed = failure_answer(error)
        if failed is None:
            raise  # logged and answered 503 by kicau/hot_routes.py
        answer = failed
    if admission is not None:
        answer.headers.extend(admission.headers)
    return answer


async def counted_and_authorised(scope: Scope, scopes: tuple[str, ...], respond: Respond) -> Answer:
    """``respond(app_state, token)``'s answer to a request with a user token carrying one of ``scopes``."""

    async def authorised(state: Any) -> Answer:
        return await respond(state, checked_user(await token_of(scope, state), scopes))

    return await counted(scope, authorised)
