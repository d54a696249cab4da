"""Reblogs (kicau/reblogs.py): reblogging and giving a reblog back (the post service), and the accounts that reblog
a status (the timeline service)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kicau.tokens import TokenInfo
from kicau.web import ApiError
from services.gateway import openapi as doc
from services.gateway.auth import OptionalToken, require
from services.gateway.deps import Common, Services, Settings, record_id
from services.gateway.params import read_params
from services.gateway.routes.favourites import PAGE, marked_page, paged
from services.gateway.upstreams import passthrough

router = APIRouter(tags=["reblogs"])

StatusesWriter = Annotated[TokenInfo, require("write:statuses")]


@router.post("/api/v1/statuses/{status_id}/reblog", openapi_extra={**doc.REBLOG_BODY, **doc.BEARER},
             responses={**doc.ok(doc.Status), **doc.errors(400, 401, 403, 404, 413, 415, 422)})
async def reblog(status_id: str, request: Request, token: StatusesWriter, services: Services,
                 settings: Settings) -> Response:
    """Reblog a status the user may see (again: the same reblog); the reblog, with the status it reblogs. A
    direct status cannot be reblogged, nor a followers-only one but by its author (403)."""
    visibility = (await read_params(request, settings.max_body_bytes)).get("visibility")
    if visibility is None:
        visibility = "public"
    elif not isinstance(visibility, str):
        raise ApiError(422, "Validation failed: Visibility is not included in the list")
    return passthrough(await services.post.call("POST", f"/internal/statuses/{record_id(status_id)}/reblog",
                                                params={"visibility": visibility}, token=token))


@router.post("/api/v1/statuses/{status_id}/unreblog", openapi_extra=doc.BEARER,
             responses={**doc.ok(doc.Status), **doc.errors(401, 403, 404)})
async def unreblog(status_id: str, token: StatusesWriter, services: Services) -> Response:
    """Give a reblog back (none: nothing changes); the status as the user now sees it."""
    return passthrough(await services.post.call("POST", f"/internal/statuses/{record_id(status_id)}/unreblog",
                                                token=token))


@router.get("/api/v1/statuses/{status_id}/reblogged_by", openapi_extra={**PAGE, **doc.OPTIONAL_BEARER},
            responses={**doc.ok(list[doc.Account]), **doc.errors(400, 401, 404)})
async def reblogged_by(status_id: str, request: Request, services: Services, common: Common,
                       token: OptionalToken) -> Response:
    """The accounts that reblog a status, most recent first (40 a page by default, at most 80); the cursors are
    reblog ids, as the Link header gives them."""
    answer = await services.timeline.call("GET", f"/internal/statuses/{record_id(status_id)}/reblogged_by",
                                          params=marked_page(request, 40, 80), token=token)
    return paged(request, common, answer)
