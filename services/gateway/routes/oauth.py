"""OAuth: registering apps, issuing and revoking tokens, registering accounts."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kicau.ip_blocks import SIGN_UP_BLOCK
from kicau.metrics import IP_BLOCK_REFUSALS
from kicau.tokens import TokenInfo
from kicau.web import ApiError
from services.gateway import openapi as doc
from services.gateway.auth import AnyToken, require
from services.gateway.deps import Common, Services, Settings
from services.gateway.ip_blocks import client_address_header
from services.gateway.params import read_oauth_params, read_params
from services.gateway.ratelimit import client_ip
from services.gateway.upstreams import passthrough, raise_for_error

router = APIRouter(tags=["oauth"])

# Only ``profile`` itself: Mastodon's UserInfo does not take ``read`` (its parent scopes do not include it).
ProfileOnly = Annotated[TokenInfo, require("profile")]


def _strings(params: dict[str, Any]) -> dict[str, Any]:
    """Lists sent as ``x[]`` collapse to space-separated strings where OAuth expects a string (lists of
    anything else stay lists, and are refused as such)."""
    def collapse(key: str, value: Any) -> Any:
        if key in ("scopes", "redirect_uris", "scope") and isinstance(value, list) \
                and all(isinstance(item, str) for item in value):
            return " ".join(value)
        return value

    return {k: collapse(k, v) for k, v in params.items()}


@router.post("/api/v1/apps", openapi_extra=doc.APP_BODY,
             responses={**doc.ok(doc.CredentialApplication), **doc.errors(400, 413, 415, 422)})
async def create_app(request: Request, services: Services, settings: Settings) -> Response:
    params = _strings(await read_params(request, settings.max_body_bytes))
    return passthrough(await services.graph.call("POST", "/internal/apps", json=params))


@router.get("/api/v1/apps/verify_credentials", openapi_extra=doc.BEARER,
            responses={**doc.ok(doc.Application), **doc.errors(401)})
async def verify_app_credentials(token: AnyToken, services: Services) -> Response:
    """The app the token was issued to (any token: the app's own or a user's), without its secrets: how a client
    checks that its credentials still work."""
    return passthrough(await services.graph.call("GET", f"/internal/apps/{quote(token.client_id, safe='')}"))


@router.post("/oauth/token", openapi_extra=doc.TOKEN_BODY,
             responses={**doc.ok(doc.Token), **doc.errors(400, 401, 413, 415, 422)})
async def token(request: Request, services: Services, settings: Settings) -> Response:
    params = _strings(await read_oauth_params(request, settings.max_body_bytes))
    return passthrough(await services.graph.call("POST", "/internal/oauth/token", json=params,
                                                 headers=client_address_header(request.scope, settings)))


@router.post("/oauth/revoke", openapi_extra=doc.REVOKE_BODY,
             responses={**doc.ok(dict[str, str], "Revoked (also when the token was unknown)"),
                        **doc.errors(400, 401, 403, 413, 415, 422)})
async def revoke(request: Request, services: Services, settings: Settings) -> Response:
    params = await read_oauth_params(request, settings.max_body_bytes)
    return passthrough(await services.graph.call("POST", "/internal/oauth/revoke", json=params))


@router.post("/api/v1/accounts", openapi_extra={**doc.REGISTRATION_BODY, **doc.BEARER},
             responses={**doc.ok(doc.Token), **doc.errors(400, 401, 403, 413, 415, 422)})
async def register(request: Request, token: AnyToken, services: Services, settings: Settings) -> Response:
    """Register an account (the graph service checks and makes it). From an address an IP block refuses sign-ups
    from (kicau/ip_blocks.py), Mastodon's 403, before anything is read."""
    if request.app.state.ip_blocks.blocklist.refuses_sign_up(client_ip(request.scope, settings.trusted_proxies)):
        IP_BLOCK_REFUSALS.labels(SIGN_UP_BLOCK).inc()
        raise ApiError(403, "This action is not allowed")
    params = await read_params(request, settings.max_body_bytes)
    return passthrough(await services.graph.call("POST", "/internal/accounts", json=params, token=token,
                                                 headers=client_address_header(request.scope, settings)))


@router.get("/oauth/userinfo", openapi_extra=doc.BEARER, responses={**doc.ok(Any), **doc.errors(401, 403)})
@router.post("/oauth/userinfo", openapi_extra=doc.BEARER, responses={**doc.ok(Any), **doc.errors(401, 403)})
async def userinfo(token: ProfileOnly, services: Services, common: Common) -> dict[str, Any]:
    """Who the token's user is, as an OpenID Connect UserInfo answer (Mastodon 4.4's, for apps that only sign
    people in): the account's URI as ``sub`` (usernames never change here, so it is stable), its display name,
    username, profile page and avatar. Scope ``profile`` only, as Mastodon's: a ``read`` token is refused."""
    answer = await services.graph.call("GET", f"/internal/accounts/{token.account_id}/credentials")
    raise_for_error(answer)
    account = answer.json()
    return {"iss": f"{common.public_url.rstrip('/')}/", "sub": account["uri"], "name": account["display_name"],
            "preferred_username": account["username"], "profile": account["url"], "picture": account["avatar"]}
