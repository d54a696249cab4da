"""Statuses: post, read, edit, delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.types import Receive, Scope

from kicau import media, quotes
from kicau.hot_routes import Answer
from kicau.ids import parse_id
from kicau.tokens import TokenInfo
from kicau.web import ApiError
from services.gateway import openapi as doc
from services.gateway.auth import OptionalToken, require
from services.gateway.deps import Common, Services, Settings, listed_ids, record_id
from services.gateway.hot import counted_and_authorised
from services.gateway.params import indexed_objects, read_params
from services.gateway.routes.favourites import marked_page, paged
from services.gateway.settings import GatewaySettings
from services.gateway.upstreams import Caller, UpstreamResponse, passthrough

router = APIRouter(tags=["statuses"])

STATUS_FIELDS = ("status", "visibility", "sensitive", "spoiler_text", "language", "in_reply_to_id", "scheduled_at")
# Quote posts' own fields (``_status_body``) are read apart: ``quoted_status_id``, ``quote_approval_policy``.
# What an edit may change (services/post/edits.py): neither the visibility nor the status replied to.
EDIT_FIELDS = ("status", "sensitive", "spoiler_text", "language")
StatusWriter = Annotated[TokenInfo, require("write:statuses")]
StatusReader = Annotated[TokenInfo, require("read:statuses")]


POLL_FIELDS = ("options", "expires_in", "multiple", "hide_totals")


def _poll(params: dict[str, Any]) -> dict[str, Any] | None:
    """A poll as JSON nests it (``"poll": {"options": [...], ...}``) or as a form spells it (``poll[options][]``,
    ``poll[expires_in]``...); checked by the post service (kicau/polls.py)."""
    nested = params.get("poll")
    if nested is not None and not isinstance(nested, dict):
        raise ApiError(422, "Validation failed: poll must be an object")
    spelled = {name: params[f"poll[{name}]"] for name in POLL_FIELDS if f"poll[{name}]" in params}
    if not nested and not spelled:
        return None
    return {name: value for name, value in {**(nested or {}), **spelled}.items() if name in POLL_FIELDS}


def _media_ids(params: dict[str, Any]) -> list[int] | None:
    """``media_ids[]`` (``media_ids`` for one), each an attachment's id (kicau/media.py); None when not given."""
    raw = params.get("media_ids")
    if raw is None:
        return None
    values = raw if isinstance(raw, list) else [raw]
    ids = [parse_id(value) if isinstance(value, str | int) else None for value in values if value != ""]
    if len(ids) > media.MAX_PER_STATUS:
        raise ApiError(422, f"Validation failed: You can't attach more than {media.MAX_PER_STATUS} files")
    if any(i is None for i in ids):
        raise ApiError(422, "Validation failed: media_ids must be ids of uploaded attachments")
    return [i for i in ids if i is not None]


_BAD_ATTRIBUTES = "Validation failed: media_attributes must be a list of objects with an id"


def _media_attributes(params: dict[str, Any]) -> list[dict[str, Any]] | None:
    """An edit's ``media_attributes[]``: each attachment's ``id`` with a new ``description`` and/or ``focus``
    ("x,y"), as JSON nests them or a form spells them (``params.indexed_objects``); checked here, None when not
    given. A custom ``thumbnail`` is a 422: Kicau makes every preview itself."""
    given = indexed_objects(params, "media_attributes", "id|description|focus|thumbnail", _BAD_ATTRIBUTES)
    if given is None:
        return None
    if len(given) > media.MAX_PER_STATUS:
        raise ApiError(422, f"Validation failed: You can't attach more than {media.MAX_PER_STATUS} files")
    described = []
    for attributes in given:
        if not isinstance(attributes, dict) or not isinstance(attributes.get("id"), str | int):
            raise ApiError(422, _BAD_ATTRIBUTES)
        media_id = parse_id(str(attributes["id"]))
        if media_id is None:
            raise ApiError(422, "Validation failed: media_attributes must name ids of uploaded attachments")
        if attributes.get("thumbnail") not in (None, ""):
            raise ApiError(422, "Validation failed: Kicau takes no custom thumbnails")
        one: dict[str, Any] = {"id": media_id}
        description, focus = attributes.get("description"), attributes.get("focus")
        if description is not None:
            if not isinstance(description, str):
                raise ApiError(422, "Validation failed: an attachment's description must be text")
            one["description"] = media.check_description(description)
        if focus not in (None, ""):
            if not isinstance(focus, str):
                raise ApiError(422, "Validation failed: focus must be two numbers from -1.0 to 1.0, as x,y")
            x, y = media.parse_focus(focus)
            one["focus"] = f"{x},{y}"
        described.append(one)
    return described


# Mastodon 4.5's quote posts (kicau/quotes.py): the status quoted, under its name or the older one some clients
# send (Fedibird's ``quote_id``), checked by the post service.
QUOTE_FIELDS = ("quoted_status_id", "quote_id")


def _status_body(params: dict[str, Any], fields: tuple[str, ...] = STATUS_FIELDS) -> dict[str, Any]:
    body = {k: params[k] for k in fields if k in params and params[k] is not None}
    quoted = next((params[name] for name in QUOTE_FIELDS if params.get(name) not in (None, "")), None)
    if quoted is not None:
        quoted_id = parse_id(str(quoted))
        if quoted_id is None:
            raise ApiError(422, "Validation failed: The post you are trying to quote does not appear to exist")
        body["quoted_status_id"] = quoted_id
    policy = params.get("quote_approval_policy")
    if policy not in (None, ""):
        if policy not in quotes.POLICIES:
            raise ApiError(422, "Validation failed: Quote approval policy is not included in the list")
        body["quote_approval_policy"] = policy
    media_ids = _media_ids(params)
    if media_ids is not None:
        body["media_ids"] = media_ids
    if "status" not in body:
        if not media_ids:
            raise ApiError(422, "Validation failed: Text can't be blank")
        body["status"] = ""  # a status of attachments alone
    poll = _poll(params)
    if poll is not None:
        body["poll"] = poll
    if body.get("scheduled_at") == "":
        del body["scheduled_at"]  # an empty form field: posted now
    if "in_reply_to_id" in body:
        if body["in_reply_to_id"] == "":
            del body["in_reply_to_id"]
        else:
            body["in_reply_to_id"] = record_id(str(body["in_reply_to_id"]))
    if body.get("language") == "":
        del body["language"]
    return body


IDEMPOTENCY_KEY = {"parameters": [{
    "name": "Idempotency-Key", "in": "header", "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 128},
    "description": "Repeating a key (per account, for an hour) answers the original status instead of a new one",
}]}


@router.post("/api/v1/statuses", openapi_extra={**doc.STATUS_BODY, **doc.BEARER, **IDEMPOTENCY_KEY},
             responses={**doc.ok(doc.Status | doc.ScheduledStatus, "The status (with scheduled_at: a ScheduledStatus)"),
                        **doc.errors(400, 401, 403, 404, 413, 415, 422)})
async def create_status(request: Request, token: StatusWriter, services: Services, settings: Settings) -> Response:
    """Posting through the framework: documented here, and answered here when the gateway runs without hot
    routes; otherwise ``create_status_hot`` answers it."""
    return passthrough(await _create(request, token, services.post, settings))


async def _create(request: Request, token: TokenInfo, post: Caller, settings: GatewaySettings) -> UpstreamResponse:
    body = _status_body(await read_params(request, settings.max_body_bytes))
    headers = {}
    key = request.headers.get("idempotency-key")
    if key is not None:
        headers["Idempotency-Key"] = key
    return await post.call("POST", "/internal/statuses", json=body, token=token, headers=headers)


WRITE = ("write:statuses",)  # or its parent, write (TokenInfo.allows), as StatusWriter


async def create_status_hot(scope: Scope, receive: Receive) -> Answer:
    """``POST /api/v1/statuses`` as a hot route (kicau/hot_routes.py): the same rate limit, token check, body
    parsing and bounds as the route above, without the framework's layers."""

    async def create(state: Any, token: TokenInfo) -> Answer:
        answer = await _create(Request(scope, receive), token, state.upstreams.post, state.settings)
        return Answer(answer.content, answer.status_code, [],
                      answer.headers.get("content-type", "application/json").encode("latin-1"))

    return await counted_and_authorised(scope, WRITE, create)


MANY_STATUSES = 20  # Mastodon's DEFAULT_STATUSES_LIMIT
STATUS_IDS = {"parameters": [doc.query("id[]", {"type": "array", "items": {"type": "string"}},
                                       f"Status ids (at most {MANY_STATUSES}; what is not an id is skipped)")]}


@router.get("/api/v1/statuses", openapi_extra={**STATUS_IDS, **doc.OPTIONAL_BEARER},
            responses={**doc.ok(list[doc.Status]), **doc.errors(401, 422)})
async def statuses(request: Request, services: Services, token: OptionalToken) -> Response:
    """Several statuses at once, in the order asked (each once), as the reader sees them: one missing, deleted or
    not the reader's to see is left out."""
    ids = listed_ids(request, MANY_STATUSES)
    if not ids:
        return Response(b"[]", media_type="application/json")
    return passthrough(await services.timeline.call("GET", "/internal/statuses", params=[("id", i) for i in ids],
                                                    token=token))


@router.get("/api/v1/statuses/{status_id}", openapi_extra=doc.OPTIONAL_BEARER,
            responses={**doc.ok(doc.Status), **doc.errors(401, 404)})
async def get_status(status_id: str, services: Services, token: OptionalToken) -> Response:
    """Anyone may read a status; a followers-only or direct one only with the token of a user who may see it
    (kicau/visibility.py), and to anyone else it is missing."""
    return passthrough(await services.post.call("GET", f"/internal/statuses/{record_id(status_id)}", token=token))


@router.get("/api/v1/statuses/{status_id}/context", openapi_extra=doc.OPTIONAL_BEARER,
            responses={**doc.ok(doc.Context), **doc.errors(401, 404)})
async def context(status_id: str, services: Services, token: OptionalToken) -> Response:
    """The thread around a status: what it replies to and the replies under it, as its reader may see them."""
    return passthrough(await services.timeline.call(
        "GET", f"/internal/statuses/{record_id(status_id)}/context", token=token))


@router.delete("/api/v1/statuses/{status_id}", openapi_extra=doc.BEARER,
               responses={**doc.ok(doc.DeletedStatus), **doc.errors(401, 403, 404, 422)})
async def delete_status(status_id: str, token: StatusWriter, services: Services) -> Response:
    return passthrough(await services.post.call("DELETE", f"/internal/statuses/{record_id(status_id)}", token=token))


@router.put("/api/v1/statuses/{status_id}", openapi_extra={**doc.STATUS_EDIT_BODY, **doc.BEARER},
            responses={**doc.ok(doc.Status), **doc.errors(400, 401, 403, 404, 409, 413, 415, 422)})
async def edit_status(status_id: str, request: Request, token: StatusWriter, services: Services,
                      settings: Settings) -> Response:
    """Rewrite one's own status: its text, spoiler, sensitivity, language (kept unless given) and attachments
    (`media_ids[]`: the ones it is to have, in order; kept unless given; `media_attributes[]`: new descriptions and
    focal points of those, by id); its followers' streams get a
    ``status.update``. Anyone else's status is a 404, as a missing one. Edits of one status
    run one at a time: one that waited 3 s for another to finish is a 409."""
    params = await read_params(request, settings.max_body_bytes)
    body = _status_body(params, EDIT_FIELDS)
    described = _media_attributes(params)
    if described is not None:
        body["media_attributes"] = described
    return passthrough(await services.post.call("PUT", f"/internal/statuses/{record_id(status_id)}", json=body,
                                                token=token))


QUOTES_PAGE = {"parameters": doc.page_parameters("max_id", "since_id", "min_id")}


@router.get("/api/v1/statuses/{status_id}/quotes", openapi_extra={**QUOTES_PAGE, **doc.BEARER},
            responses={**doc.ok(list[doc.Status]), **doc.errors(400, 401, 403, 404)})
async def status_quotes(status_id: str, request: Request, token: StatusReader, services: Services,
                        common: Common) -> Response:
    """The statuses that quote a status (kicau/quotes.py), newest first, as the reader may see them (20 a page by
    default, at most 40; Link headers). 404 for a status the reader may not see."""
    answer = await services.timeline.call("GET", f"/internal/statuses/{record_id(status_id)}/quotes",
                                          params=marked_page(request, 20, 40), token=token)
    return paged(request, common, answer)


@router.post("/api/v1/statuses/{status_id}/quotes/{quoting_status_id}/revoke", openapi_extra=doc.BEARER,
             responses={**doc.ok(doc.Status), **doc.errors(401, 403, 404)})
async def revoke_quote(status_id: str, quoting_status_id: str, token: StatusWriter, services: Services) -> Response:
    """Take back another status's quote of one's own: the quoting status then shows its quote ``revoked``. 404
    for a status or quote the user may not see, 403 for a status not the user's."""
    return passthrough(await services.post.call(
        "POST", f"/internal/statuses/{record_id(status_id)}/quotes/{record_id(quoting_status_id)}/revoke",
        token=token))


@router.put("/api/v1/statuses/{status_id}/interaction_policy",
            openapi_extra={**doc.INTERACTION_POLICY_BODY, **doc.BEARER},
            responses={**doc.ok(doc.Status), **doc.errors(400, 401, 403, 404, 415, 422)})
async def interaction_policy(status_id: str, request: Request, token: StatusWriter, services: Services,
                             settings: Settings) -> Response:
    """Who may quote one's own status from now on (``quote_approval_policy``: ``public``, ``followers`` or
    ``nobody``; a followers-only or direct status is quoted by no one whatever it says); quotes already made
    stand."""
    params = await read_params(request, settings.max_body_bytes)
    policy = params.get("quote_approval_policy")
    if policy not in quotes.POLICIES:
        raise ApiError(422, "Validation failed: Quote approval policy is not included in the list")
    return passthrough(await services.post.call(
        "PUT", f"/internal/statuses/{record_id(status_id)}/interaction_policy",
        json={"quote_approval_policy": policy}, token=token))


@router.get("/api/v1/statuses/{status_id}/history", openapi_extra=doc.OPTIONAL_BEARER,
            responses={**doc.ok(list[doc.StatusEdit]), **doc.errors(401, 404)})
async def status_history(status_id: str, services: Services, token: OptionalToken) -> Response:
    """Every version of a status its reader may see, oldest first (one, if it was never edited)."""
    return passthrough(await services.post.call("GET", f"/internal/statuses/{record_id(status_id)}/history",
                                                token=token))


@router.get("/api/v1/statuses/{status_id}/source", openapi_extra=doc.BEARER,
            responses={**doc.ok(doc.StatusSource), **doc.errors(401, 403, 404)})
async def status_source(status_id: str, services: Services, token: StatusReader) -> Response:
    """The plain text a status was written in, for an edit form."""
    return passthrough(await services.post.call("GET", f"/internal/statuses/{record_id(status_id)}/source",
                                                token=token))
