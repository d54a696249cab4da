"""Direct conversations (kicau/conversations.py): an account's conversations, paged by their last status, read and
forgotten, all served by the timeline service; their live events are the ``direct`` stream's (routes/streaming.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kicau.tokens import TokenInfo
from services.gateway import openapi as doc
from services.gateway.auth import require
from services.gateway.deps import Common, Services, record_id
from services.gateway.routes.favourites import PAGE, marked_list
from services.gateway.upstreams import passthrough

router = APIRouter(tags=["conversations"])

# Mastodon's scopes: the conversations are read as statuses are, and changed with their own scope.
ConversationsReader = Annotated[TokenInfo, require("read:statuses")]
ConversationsWriter = Annotated[TokenInfo, require("write:conversations")]


@router.get("/api/v1/conversations", openapi_extra={**PAGE, **doc.BEARER},
            responses={**doc.ok(list[doc.Conversation]), **doc.errors(400, 401, 403)})
async def conversations(request: Request, token: ConversationsReader, services: Services,
                        common: Common) -> Response:
    """The user's direct conversations, the one with the newest status first (20 a page by default, at most 40);
    the cursors are last status ids, as the Link header gives them."""
    return await marked_list(request, common, services, token, "/internal/conversations", 20, 40)


@router.post("/api/v1/conversations/{conversation_id}/read", openapi_extra=doc.BEARER,
             responses={**doc.ok(doc.Conversation), **doc.errors(401, 403, 404)})
async def read_conversation(conversation_id: str, token: ConversationsWriter, services: Services) -> Response:
    """Mark one of the user's conversations read; the conversation."""
    return passthrough(await services.timeline.call(
        "POST", f"/internal/conversations/{record_id(conversation_id)}/read", token=token))


@router.delete("/api/v1/conversations/{conversation_id}", openapi_extra=doc.BEARER,
               responses={**doc.ok(dict[str, str], "Removed from the user's conversations"),
                          **doc.errors(401, 403, 404)})
async def forget_conversation(conversation_id: str, token: ConversationsWriter, services: Services) -> Response:
    """Remove one of the user's conversations (its statuses stay; a new one in it brings it back)."""
    return passthrough(await services.timeline.call(
        "POST", f"/internal/conversations/{record_id(conversation_id)}/forget", token=token))
