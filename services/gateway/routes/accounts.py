"""Accounts: profiles, lookup, search, follows and relationships."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kicau.web import NEXT_CURSOR_HEADER, ApiError
from services.gateway.auth import FollowUser, OptionalToken, ReadUser
from services.gateway.deps import Common, Services, Settings, page_limit, record_id
from services.gateway.pagination import link_header
from services.gateway.params import read_params, reject_nul
from services.gateway.upstreams import passthrough, raise_for_error

router = APIRouter(tags=["accounts"])


@router.get("/api/v1/accounts/verify_credentials")
async def verify_credentials(token: ReadUser, services: Services) -> Response:
    return passthrough(await services.graph.call("GET", f"/internal/accounts/{token.account_id}/credentials"))


@router.get("/api/v1/accounts/lookup")
async def lookup(services: Services, acct: str = "") -> Response:
    if not acct or len(acct) > 300:
        raise ApiError(404, "Record not found")
    return passthrough(await services.graph.call("GET", "/internal/accounts/lookup", params={"acct": acct}))


@router.get("/api/v1/accounts/relationships")
async def relationships(request: Request, token: ReadUser, services: Services) -> Response:
    raw = request.query_params.getlist("id[]") + request.query_params.getlist("id")
    ids = [i for i in (record_id_or_none(v) for v in raw[:40]) if i is not None]
    answer = await services.graph.call(
        "GET", "/internal/accounts/relationships", params=[("id", i) for i in ids], token=token
    )
    return passthrough(answer)


def record_id_or_none(value: str) -> int | None:
    try:
        return record_id(value)
    except ApiError:
        return None


@router.get("/api/v2/search")
async def search(services: Services, token: OptionalToken, q: str = "", type: str | None = None,
                 limit: str | None = None) -> Response:
    accounts: bytes = b"[]"
    if len(q) > 500:
        raise ApiError(422, "Validation failed: q is too long")
    reject_nul("q", q)
    reject_nul("type", type or "")
    if type in (None, "", "accounts") and q.strip():
        answer = await services.graph.call(
            "GET", "/internal/search/accounts", params={"q": q, "limit": page_limit(limit, 20, 40)}
        )
        raise_for_error(answer)
        accounts = answer.content
    body = b'{"accounts":' + accounts + b',"statuses":[],"hashtags":[]}'
    return Response(body, media_type="application/json")


@router.get("/api/v1/accounts/{account_id}")
async def account(account_id: str, services: Services) -> Response:
    return passthrough(await services.graph.call("GET", f"/internal/accounts/{record_id(account_id)}"))


@router.post("/api/v1/accounts/{account_id}/follow")
async def follow(account_id: str, request: Request, token: FollowUser, services: Services,
                 settings: Settings) -> Response:
    await read_params(request, settings.max_body_bytes)  # reblogs/notify/languages: accepted, not used yet
    target = record_id(account_id)
    return passthrough(await services.graph.call("POST", f"/internal/accounts/{target}/follow", token=token))


@router.post("/api/v1/accounts/{account_id}/unfollow")
async def unfollow(account_id: str, request: Request, token: FollowUser, services: Services,
                   settings: Settings) -> Response:
    await read_params(request, settings.max_body_bytes)
    target = record_id(account_id)
    return passthrough(await services.graph.call("POST", f"/internal/accounts/{target}/unfollow", token=token))


async def _follow_list(direction: str, account_id: str, request: Request, services: Services,
                       common: Common) -> Response:
    params: dict[str, object] = {"limit": page_limit(request.query_params.get("limit"), 40, 80)}
    max_id = request.query_params.get("max_id")
    if max_id:
        params["max_id"] = record_id(max_id)
    answer = await services.graph.call(
        "GET", f"/internal/accounts/{record_id(account_id)}/{direction}", params=params
    )
    raise_for_error(answer)
    link = link_header(request, common.public_url, answer.headers.get(NEXT_CURSOR_HEADER), None)
    return passthrough(answer, {"Link": link} if link else None)


@router.get("/api/v1/accounts/{account_id}/followers")
async def followers(account_id: str, request: Request, services: Services, common: Common) -> Response:
    return await _follow_list("followers", account_id, request, services, common)


@router.get("/api/v1/accounts/{account_id}/following")
async def following(account_id: str, request: Request, services: Services, common: Common) -> Response:
    return await _follow_list("following", account_id, request, services, common)


