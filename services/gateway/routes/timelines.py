"""Timelines: the reader's home timeline and an account's statuses, with Mastodon pagination."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.gateway import openapi as doc
from services.gateway.auth import ReadUser
from services.gateway.deps import Common, Services, cursor, page_limit, record_id
from services.gateway.pagination import link_header
from services.gateway.upstreams import passthrough, raise_for_error

router = APIRouter(tags=["timelines"])


def _page_params(request: Request) -> dict[str, int]:
    query = request.query_params
    params = {"limit": page_limit(query.get("limit"), 20, 40)}
    for name in ("max_id", "since_id", "min_id"):
        value = cursor(query.get(name), name)
        if value is not None:
            params[name] = value
    return params


PAGE = {"parameters": doc.page_parameters("max_id", "since_id", "min_id")}


@router.get("/api/v1/timelines/home", openapi_extra={**PAGE, **doc.BEARER},
            responses={**doc.ok(list[doc.Status]), **doc.errors(400, 401, 403, 422)})
async def home(request: Request, token: ReadUser, services: Services, common: Common) -> Response:
    answer = await services.timeline.call("GET", "/internal/timelines/home", params=_page_params(request),
                                          token=token)
    raise_for_error(answer)
    link = link_header(request, common.public_url, answer.headers.get("x-kicau-next"),
                       answer.headers.get("x-kicau-prev"))
    return passthrough(answer, {"Link": link} if link else None)


@router.get("/api/v1/accounts/{account_id}/statuses", openapi_extra=PAGE,
            responses={**doc.ok(list[doc.Status]), **doc.errors(400, 404)})
async def account_statuses(account_id: str, request: Request, services: Services, common: Common) -> Response:
    answer = await services.timeline.call(
        "GET", f"/internal/accounts/{record_id(account_id)}/statuses", params=_page_params(request)
    )
    raise_for_error(answer)
    link = link_header(request, common.public_url, answer.headers.get("x-kicau-next"),
                       answer.headers.get("x-kicau-prev"))
    return passthrough(answer, {"Link": link} if link else None)
