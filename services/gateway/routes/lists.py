"""Lists (kicau/lists.py): the user's lists of accounts it follows, their members and their timelines. The graph
service makes and changes them; the timeline service reads their members and timelines."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kicau.ids import is_digits, parse_id
from kicau.lists import REPLIES_POLICIES
from kicau.tokens import TokenInfo
from kicau.web import ApiError
from services.gateway import openapi as doc
from services.gateway.auth import require
from services.gateway.deps import Common, Services, Settings, cursor, page_limit, record_id
from services.gateway.params import optional_flag, optional_str, read_params
from services.gateway.routes.favourites import PAGE, paged
from services.gateway.routes.timelines import status_page_params
from services.gateway.upstreams import passthrough

router = APIRouter(tags=["lists"])

ListsReader = Annotated[TokenInfo, require("read:lists")]
ListsWriter = Annotated[TokenInfo, require("write:lists")]

ONE = {**doc.ok(doc.List), **doc.errors(401, 403, 404)}
CHANGE = {**doc.ok(doc.List), **doc.errors(400, 401, 403, 404, 413, 415, 422)}
DONE = {**doc.ok(dict[str, str], "Done"), **doc.errors(400, 401, 403, 404, 413, 415, 422)}


async def _list_form(request: Request, settings: Settings) -> dict[str, Any]:
    """A list's title and settings as given (those not given left out): 422 for a title that is not text, a
    replies policy that is none of Mastodon's, an ``exclusive`` that is no boolean."""
    given = await read_params(request, settings.max_body_bytes)
    form: dict[str, Any] = {}
    title = optional_str(given, "title")
    if title is not None:
        form["title"] = title
    policy = optional_str(given, "replies_policy")
    if policy:
        if policy not in REPLIES_POLICIES:
            raise ApiError(422, "Validation failed: Replies policy is not included in the list")
        form["replies_policy"] = policy
    exclusive = optional_flag(given, "exclusive")
    if exclusive is not None:
        form["exclusive"] = exclusive
    return form


def _whole(value: object) -> object:
    """A JSON number with no fraction (``4934.0``) as the integer it is: JSON Schema's ``integer`` counts it."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


async def _members_form(request: Request, settings: Settings) -> tuple[list[int], bool]:
    """``account_ids[]``: the ids, and whether some were digits too long to name any account. 422 when none are
    given, more than 100, or one is not digits at all (a 404 would read as "no such list" to a client, and the list
    is there); whether each id names an account is the graph's to say."""
    given = _whole((await read_params(request, settings.max_body_bytes)).get("account_ids"))
    named = [given] if isinstance(given, str | int) and not isinstance(given, bool) else given
    if isinstance(named, list):
        named = [_whole(raw) for raw in named]
    if not isinstance(named, list) or not named or len(named) > 100:
        raise ApiError(422, "Validation failed: account_ids[] must name 1 to 100 accounts")
    if not all(is_digits(raw) for raw in named):
        raise ApiError(422, "Validation failed: account_ids[] must be account ids")
    ids = [parse_id(raw) for raw in named]
    return [i for i in ids if i is not None], None in ids


@router.get("/api/v1/lists", openapi_extra=doc.BEARER, responses={**doc.ok(list[doc.List]), **doc.errors(401, 403)})
async def lists(token: ListsReader, services: Services) -> Response:
    """The user's lists, in the order made."""
    return passthrough(await services.graph.call("GET", "/internal/lists", token=token))


@router.post("/api/v1/lists", openapi_extra={**doc.LIST_BODY, **doc.BEARER}, responses=CHANGE)
async def create_list(request: Request, token: ListsWriter, services: Services, settings: Settings) -> Response:
    """Make a list: ``title`` (required), ``replies_policy`` (``followed``, ``list`` (the default) or ``none``: which
    replies its timeline shows), ``exclusive`` (its members' statuses leave the home timeline; default false). At
    most 50 lists."""
    form = await _list_form(request, settings)
    return passthrough(await services.graph.call("POST", "/internal/lists", json=form, token=token))


@router.get("/api/v1/lists/{list_id}", openapi_extra=doc.BEARER, responses=ONE)
async def one_list(list_id: str, token: ListsReader, services: Services) -> Response:
    """One of the user's lists; 404 for none of its own."""
    return passthrough(await services.graph.call("GET", f"/internal/lists/{record_id(list_id)}", token=token))


@router.put("/api/v1/lists/{list_id}", openapi_extra={**doc.LIST_CHANGE_BODY, **doc.BEARER}, responses=CHANGE)
async def update_list(list_id: str, request: Request, token: ListsWriter, services: Services,
                      settings: Settings) -> Response:
    """Change a list's ``title``, ``replies_policy`` or ``exclusive`` (those given); the List."""
    target = record_id(list_id)
    form = await _list_form(request, settings)
    return passthrough(await services.graph.call("PUT", f"/internal/lists/{target}", json=form, token=token))


@router.delete("/api/v1/lists/{list_id}", openapi_extra=doc.BEARER,
               responses={**doc.ok(dict[str, str], "Deleted"), **doc.errors(401, 403, 404)})
async def delete_list(list_id: str, token: ListsWriter, services: Services) -> Response:
    """Delete one of the user's lists; 404 for none of its own."""
    return passthrough(await services.graph.call("DELETE", f"/internal/lists/{record_id(list_id)}", token=token))


@router.get("/api/v1/lists/{list_id}/accounts", openapi_extra={**PAGE, **doc.BEARER},
            responses={**doc.ok(list[doc.Account]), **doc.errors(400, 401, 403, 404)})
async def list_members(list_id: str, request: Request, token: ListsReader, services: Services,
                       common: Common) -> Response:
    """The accounts in one of the user's lists, highest id first: 40 a page by default, at most 80, every one with
    ``limit=0``; the cursors are account ids, as the Link header gives them."""
    target = record_id(list_id)
    query = request.query_params
    raw_limit = query.get("limit")
    params: dict[str, int] = {"limit": 0 if raw_limit == "0" else page_limit(raw_limit, 40, 80)}
    for name in ("max_id", "since_id", "min_id"):
        value = cursor(query.get(name), name)
        if value is not None:
            params[name] = value
    answer = await services.timeline.call("GET", f"/internal/lists/{target}/accounts", params=params, token=token)
    return paged(request, common, answer)


@router.post("/api/v1/lists/{list_id}/accounts", openapi_extra={**doc.MEMBERS_BODY, **doc.BEARER}, responses=DONE)
async def add_to_list(list_id: str, request: Request, token: ListsWriter, services: Services,
                      settings: Settings) -> Response:
    """Add accounts the user follows to one of its lists (``account_ids[]``). Nothing is added unless all can be:
    404 for an account that is not there or not followed, 422 for one already in the list."""
    target = record_id(list_id)
    ids, beyond_any = await _members_form(request, settings)
    if beyond_any:
        raise ApiError(404, "Record not found")
    return passthrough(await services.graph.call("POST", f"/internal/lists/{target}/accounts",
                                                 json={"account_ids": ids}, token=token))


@router.delete("/api/v1/lists/{list_id}/accounts", openapi_extra={**doc.MEMBERS_BODY, **doc.BEARER},
               responses=DONE)
async def remove_from_list(list_id: str, request: Request, token: ListsWriter, services: Services,
                           settings: Settings) -> Response:
    """Take accounts out of one of the user's lists (``account_ids[]``; one not in it: nothing changes)."""
    target = record_id(list_id)
    ids, _ = await _members_form(request, settings)  # an id no account can have is in no list: nothing to take out
    return passthrough(await services.graph.call("POST", f"/internal/lists/{target}/accounts/remove",
                                                 json={"account_ids": ids}, token=token))


@router.get("/api/v1/accounts/{account_id}/lists", openapi_extra=doc.BEARER,
            responses={**doc.ok(list[doc.List]), **doc.errors(401, 403, 404)})
async def lists_holding(account_id: str, token: ListsReader, services: Services) -> Response:
    """The user's lists that hold an account."""
    return passthrough(await services.graph.call("GET", f"/internal/accounts/{record_id(account_id)}/lists",
                                                 token=token))


@router.get("/api/v1/timelines/list/{list_id}", openapi_extra={**PAGE, **doc.BEARER},
            responses={**doc.ok(list[doc.Status]), **doc.errors(400, 401, 403, 404)})
async def list_timeline(list_id: str, request: Request, token: ListsReader, services: Services,
                        common: Common) -> Response:
    """One of the user's lists' timeline, newest first: its members' statuses as they reach the home timeline,
    and of their replies those its ``replies_policy`` shows (a page may hold fewer than asked; follow the Link
    header)."""
    target = record_id(list_id)
    answer = await services.timeline.call("GET", f"/internal/timelines/list/{target}",
                                          params=status_page_params(request.query_params), token=token)
    return paged(request, common, answer)
