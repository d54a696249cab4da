"""Scheduled statuses (services/post/scheduled.py): an account's statuses kept to be posted later, read, moved and
dropped through the post service, which keeps them and posts each when its time comes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kicau.tokens import TokenInfo
from services.gateway import openapi as doc
from services.gateway.auth import require
from services.gateway.deps import Common, Services, Settings, record_id
from services.gateway.params import read_params
from services.gateway.routes.favourites import PAGE, marked_list
from services.gateway.upstreams import passthrough

router = APIRouter(tags=["scheduled statuses"])

ScheduledReader = Annotated[TokenInfo, require("read:statuses")]
ScheduledWriter = Annotated[TokenInfo, require("write:statuses")]


@router.get("/api/v1/scheduled_statuses", openapi_extra={**PAGE, **doc.BEARER},
            responses={**doc.ok(list[doc.ScheduledStatus]), **doc.errors(400, 401, 403)})
async def scheduled_statuses(request: Request, token: ScheduledReader, services: Services,
                             common: Common) -> Response:
    """The user's scheduled statuses, most recently scheduled first (20 a page by default, at most 40); the cursors
    are their ids, as the Link header gives them."""
    return await marked_list(request, common, services, token, "/internal/scheduled_statuses", 20, 40,
                             upstream=services.post)


@router.get("/api/v1/scheduled_statuses/{scheduled_id}", openapi_extra=doc.BEARER,
            responses={**doc.ok(doc.ScheduledStatus), **doc.errors(401, 403, 404)})
async def scheduled_status(scheduled_id: str, token: ScheduledReader, services: Services) -> Response:
    """One of the user's scheduled statuses (anyone else's is a 404, as a missing one)."""
    return passthrough(await services.post.call("GET", f"/internal/scheduled_statuses/{record_id(scheduled_id)}",
                                                token=token))


@router.put("/api/v1/scheduled_statuses/{scheduled_id}", openapi_extra={**doc.RESCHEDULE_BODY, **doc.BEARER},
            responses={**doc.ok(doc.ScheduledStatus), **doc.errors(400, 401, 403, 404, 413, 415)})
async def reschedule(scheduled_id: str, request: Request, token: ScheduledWriter, services: Services,
                     settings: Settings) -> Response:
    """Move a scheduled status to another time: at least five minutes ahead, within the daily limit."""
    params = await read_params(request, settings.max_body_bytes)
    body = {"scheduled_at": params["scheduled_at"]} if params.get("scheduled_at") is not None else {}
    return passthrough(await services.post.call("PUT", f"/internal/scheduled_statuses/{record_id(scheduled_id)}",
                                                json=body, token=token))


@router.delete("/api/v1/scheduled_statuses/{scheduled_id}", openapi_extra=doc.BEARER,
               responses={**doc.ok(dict[str, str], "Deleted"), **doc.errors(401, 403, 404)})
async def unschedule(scheduled_id: str, token: ScheduledWriter, services: Services) -> Response:
    """Drop a scheduled status: it is never posted."""
    return passthrough(await services.post.call("DELETE", f"/internal/scheduled_statuses/{record_id(scheduled_id)}",
                                                token=token))
