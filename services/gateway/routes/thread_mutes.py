"""Muted threads (kicau/thread_mutes.py): Mastodon's "mute conversation", through the post service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from fastapi.responses import Response

from kicau.tokens import TokenInfo
from services.gateway import openapi as doc
from services.gateway.auth import require
from services.gateway.deps import Services, record_id
from services.gateway.upstreams import passthrough

router = APIRouter(tags=["statuses"])

MutesWriter = Annotated[TokenInfo, require("write:mutes")]


@router.post("/api/v1/statuses/{status_id}/mute", openapi_extra=doc.BEARER,
             responses={**doc.ok(doc.Status), **doc.errors(401, 403, 404)})
async def mute_thread(status_id: str, token: MutesWriter, services: Services) -> Response:
    """Hear nothing more about the thread of a status the user may see (of the status it reblogs, for a reblog):
    no notification of a mention, favourite, boost or edit in it. Its statuses stay where they are and read
    ``muted: true``. Again: nothing changes. The status as the user now sees it."""
    return passthrough(await services.post.call("POST", f"/internal/statuses/{record_id(status_id)}/mute",
                                                token=token))


@router.post("/api/v1/statuses/{status_id}/unmute", openapi_extra=doc.BEARER,
             responses={**doc.ok(doc.Status), **doc.errors(401, 403, 404)})
async def unmute_thread(status_id: str, token: MutesWriter, services: Services) -> Response:
    """Be notified again about the thread of a status the user may see (not muted: nothing changes); the status as
    the user now sees it."""
    return passthrough(await services.post.call("POST", f"/internal/statuses/{record_id(status_id)}/unmute",
                                                token=token))
