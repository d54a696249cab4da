"""Polls (kicau/polls.py): a poll as its reader sees it, and voting in it, through the post service (a poll's id is
its status's)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kicau.tokens import TokenInfo
from services.gateway import openapi as doc
from services.gateway.auth import OptionalToken, require
from services.gateway.deps import Services, Settings, record_id
from services.gateway.params import read_params
from services.gateway.upstreams import passthrough

router = APIRouter(tags=["polls"])

Voter = Annotated[TokenInfo, require("write:statuses")]


@router.get("/api/v1/polls/{poll_id}", openapi_extra=doc.OPTIONAL_BEARER,
            responses={**doc.ok(doc.Poll), **doc.errors(401, 404)})
async def poll(poll_id: str, services: Services, token: OptionalToken) -> Response:
    """A poll of a status the reader may see, as it is now (with a user's token: its ``voted`` and
    ``own_votes``)."""
    return passthrough(await services.post.call("GET", f"/internal/polls/{record_id(poll_id)}", token=token))


@router.post("/api/v1/polls/{poll_id}/votes", openapi_extra={**doc.VOTE_BODY, **doc.BEARER},
             responses={**doc.ok(doc.Poll), **doc.errors(400, 401, 403, 404, 413, 415, 422)})
async def vote(poll_id: str, request: Request, token: Voter, services: Services, settings: Settings) -> Response:
    """Vote once in a poll of a status the user may see (``choices[]``: the options' indices; one, unless the
    poll takes several). Mastodon's 422s: the user's own poll, one that ended, an option that is not there, a
    second vote. The poll as the user now sees it."""
    params: dict[str, Any] = await read_params(request, settings.max_body_bytes)
    return passthrough(await services.post.call("POST", f"/internal/polls/{record_id(poll_id)}/votes",
                                                json={"choices": params.get("choices")}, token=token))
