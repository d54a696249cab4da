"""Notifications (kicau/notifications.py): mentions, new followers, favourites and reblogs, served by the timeline
service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import QueryParams

from kicau.ids import parse_id
from kicau.notification_groups import (
    GROUPED_TYPES,
    GroupSpan,
    encode,
    grouped_page,
    key_of,
    notices_of,
    parse_group_key,
)
from kicau.tokens import TokenInfo
from kicau.web import FALSE_WORDS, TRUE_WORDS, ApiError
from services.gateway import openapi as doc
from services.gateway.auth import require
from services.gateway.deps import Common, Services, cursor, page_limit, record_id
from services.gateway.pagination import link_header
from services.gateway.params import optional_flag, reject_nul
from services.gateway.upstreams import passthrough, raise_for_error

router = APIRouter(tags=["notifications"])

NotificationsReader = Annotated[TokenInfo, require("read:notifications")]
NotificationsWriter = Annotated[TokenInfo, require("write:notifications")]

# Bounds on the type lists a request may give (Mastodon has a dozen types; Kicau records three).
MAX_TYPES, MAX_TYPE_LENGTH = 20, 64

NAMES = {"type": "array", "items": doc.text(max_length=MAX_TYPE_LENGTH), "maxItems": MAX_TYPES}
FILTERS = [
    doc.query("types[]", NAMES, "Only these types (Kicau records mention, follow, favourite, reblog, status, update)"),
    doc.query("exclude_types[]", NAMES, "Not these types"),
    doc.query("account_id", doc.CURSOR, "Only those caused by this account (held back or not)"),
    doc.query("include_filtered", {"type": "string", "enum": [*TRUE_WORDS, *FALSE_WORDS]},
              "With those the user's notification policy held back"),
]
PAGE = {"parameters": [  # page_parameters' limit: 40 by default, at most 80 here
    *doc.page_parameters("max_id", "since_id", "min_id"), *FILTERS]}


def _types(query: QueryParams, name: str) -> list[str]:
    """``name[]`` (as Mastodon.py sends it), or ``name``, repeated; each may also list names separated by
    commas."""
    given = query.getlist(f"{name}[]") + query.getlist(name)
    if len(given) > MAX_TYPES or any(len(value) > MAX_TYPE_LENGTH for value in given):
        raise ApiError(422, f"Validation failed: {name} names at most {MAX_TYPES} types of {MAX_TYPE_LENGTH}"
                            " characters")
    return [part.strip() for value in given for part in reject_nul(name, value).split(",") if part.strip()]


def _page_params(query: QueryParams) -> dict[str, object]:
    """The timeline service's parameters for a page of notifications: its size, cursors and filters."""
    params: dict[str, object] = {"limit": page_limit(query.get("limit"), 40, 80)}
    for name in ("max_id", "since_id", "min_id"):
        value = cursor(query.get(name), name)
        if value is not None:
            params[name] = value
    for name in ("types", "exclude_types"):
        names = _types(query, name)  # only empty names (``types[]=``) are as none
        if names:
            params[name] = ",".join(names)
    if optional_flag({"include_filtered": query.get("include_filtered")}, "include_filtered"):
        params["include_filtered"] = "true"  # with those the user's policy held back (kicau/notification_policies.py)
    from_account = query.get("account_id")
    if from_account:
        account_id = parse_id(from_account)
        if account_id is None:
            raise ApiError(400, "account_id must be an account id")
        params["account_id"] = account_id
    return params


async def _page(request: Request, token: TokenInfo, services: Services, common: Common,
                ) -> tuple[bytes, dict[str, str] | None]:
    """A page of notifications (Notification JSON) and its Link header, if any."""
    answer = await services.timeline.call("GET", "/internal/notifications", params=_page_params(request.query_params),
                                          token=token)
    raise_for_error(answer)
    link = link_header(request, common.public_url, answer.headers.get("x-kicau-next"),
                       answer.headers.get("x-kicau-prev"))
    content: bytes = answer.content
    return content, {"Link": link} if link else None


@router.get("/api/v1/notifications", openapi_extra={**PAGE, **doc.BEARER},
            responses={**doc.ok(list[doc.Notification]), **doc.errors(400, 401, 403, 422)})
async def notifications(request: Request, token: NotificationsReader, services: Services, common: Common) -> Response:
    page, headers = await _page(request, token, services, common)
    return Response(page, media_type="application/json", headers=headers)


# How many notifications a grouped page is made from (the timeline service's largest page).
GROUPED_WINDOW = 80
GROUPED_TYPES_PARAMETER = doc.query("grouped_types[]", NAMES,
                                    "The types grouped (favourite, follow and reblog when none is named)")
GROUPED_PAGE = {"parameters": [
    *PAGE["parameters"],
    GROUPED_TYPES_PARAMETER,
    doc.query("expand_accounts", {"type": "string", "enum": ["full", "partial_avatars"]},
              "Accepted; accounts always come in full"),
]}


@router.get("/api/v2/notifications", openapi_extra={**GROUPED_PAGE, **doc.BEARER},
            responses={**doc.ok(doc.GroupedNotifications), **doc.errors(400, 401, 403, 422)})
async def grouped_notifications(request: Request, token: NotificationsReader, services: Services,
                                common: Common) -> Response:
    """Mastodon's grouped notifications (kicau/notification_groups.py): ``limit`` groups (40, at most 80) made
    from a window of the newest notifications below the cursor, with the v1 list's filters, and a Link header."""
    query = request.query_params
    grouped = _types(query, "grouped_types") or GROUPED_TYPES
    if query.get("expand_accounts") not in (None, "full", "partial_avatars"):
        raise ApiError(422, "Validation failed: expand_accounts must be full or partial_avatars")
    params = _page_params(query)
    limit = int(str(params["limit"]))
    params["limit"] = GROUPED_WINDOW
    answer = await services.timeline.call("GET", "/internal/notifications", params=params, token=token)
    raise_for_error(answer)
    max_id = params.get("max_id")
    page = grouped_page(answer.content, limit, answer.headers.get("x-kicau-next") is not None, grouped,
                        below=max_id if isinstance(max_id, int) else None,
                        bounded="since_id" in params or "min_id" in params)
    counts = await _whole_counts(services, token, page.uncounted, params.get("account_id"))
    link = link_header(request, common.public_url, page.next_max_id, page.prev_min_id)
    return Response(page.body(counts), media_type="application/json", headers={"Link": link} if link else None)


async def _whole_counts(services: Services, token: TokenInfo, keys: list[str], from_account: object = None,
                        ) -> dict[str, int]:
    """The whole count of each group named (grouped keys), from the timeline service; one call for them all."""
    if not keys:
        return {}
    params = {"keys": ",".join(keys)} | ({"account_id": from_account} if from_account is not None else {})
    answer = await services.timeline.call("GET", "/internal/notifications/group_counts", params=params, token=token)
    raise_for_error(answer)
    counts: dict[str, int] = answer.json()
    return counts


# How deep a group's or an unread count's reads go: pages of the timeline service's largest size.
GROUP_PAGES, UNREAD_MAX = 10, 1000


async def _read_all(services: Services, token: TokenInfo, params: dict[str, object], enough: int,
                    ) -> list[dict[str, Any]]:
    """Notifications newest first, a page at a time, until ``enough`` or none is left (``params``: the filters)."""
    found: list[dict[str, Any]] = []
    cursor: object = params.get("max_id")
    for _ in range(GROUP_PAGES * 10):
        query = {**params, "limit": GROUPED_WINDOW} | ({"max_id": cursor} if cursor is not None else {})
        answer = await services.timeline.call("GET", "/internal/notifications", params=query, token=token)
        raise_for_error(answer)
        page = notices_of(answer.content)
        found += page
        if len(page) < GROUPED_WINDOW or len(found) >= enough:
            break
        cursor = page[-1]["id"]
    return found


async def _group(group_key: str, token: TokenInfo, services: Services) -> list[dict[str, Any]]:
    """The notifications of one group, newest first (its window's, up to ``GROUP_PAGES`` pages); 404 for none."""
    named = parse_group_key(group_key)
    if isinstance(named, int):
        answer = await services.timeline.call("GET", f"/internal/notifications/{named}", token=token)
        raise_for_error(answer)
        return notices_of(b"[" + answer.content + b"]")
    if not isinstance(named, GroupSpan):
        raise ApiError(404, "Record not found")
    span = named
    found = [n for n in await _read_all(services, token, {"types": span.kind, "max_id": span.max_id,
                                                          "since_id": span.min_id - 1}, GROUP_PAGES * GROUPED_WINDOW)
             if key_of(n) == group_key]
    if not found:
        raise ApiError(404, "Record not found")
    return found


# The unread counts' routes come before the group routes: "unread_count" would otherwise be taken for a group key.
UNREAD = {"parameters": [doc.query("limit", doc.LIMIT, "Counted up to (100 when absent, at most 1,000)"), *FILTERS]}


async def _unread(request: Request, token: TokenInfo, services: Services) -> list[dict[str, Any]]:
    """The notifications newer than the account's notifications marker (all, without one), with the v1 list's
    filters, ``limit`` (100, at most 1,000) at most."""
    query = request.query_params
    limit = page_limit(query.get("limit"), 100, UNREAD_MAX)
    params = {k: v for k, v in _page_params(query).items() if k not in ("limit", "max_id", "since_id", "min_id")}
    answer = await services.timeline.call("GET", "/internal/markers", params={"timeline": "notifications"},
                                          token=token)
    raise_for_error(answer)
    marker = answer.json().get("notifications")
    if marker is not None:
        params["since_id"] = int(marker["last_read_id"])
    return (await _read_all(services, token, params, limit))[:limit]


@router.get("/api/v1/notifications/unread_count", openapi_extra={**UNREAD, **doc.BEARER},
            responses={**doc.ok(dict[str, int], "How many"), **doc.errors(400, 401, 403, 422)})
async def unread_count(request: Request, token: NotificationsReader, services: Services) -> dict[str, int]:
    """How many notifications came since the notifications marker."""
    return {"count": len(await _unread(request, token, services))}


@router.get("/api/v2/notifications/unread_count", openapi_extra={
    "parameters": [*UNREAD["parameters"], GROUPED_TYPES_PARAMETER], **doc.BEARER},
            responses={**doc.ok(dict[str, int], "How many groups"), **doc.errors(400, 401, 403, 422)})
async def unread_group_count(request: Request, token: NotificationsReader, services: Services) -> dict[str, int]:
    """How many groups the notifications since the notifications marker make."""
    grouped = _types(request.query_params, "grouped_types") or GROUPED_TYPES
    return {"count": len({key_of(n, grouped) for n in await _unread(request, token, services)})}


GROUP_KEY = {"parameters": [{"name": "group_key", "in": "path", "required": True, "schema": doc.text(max_length=80),
                             "description": "A notification group's key (anything else is a 404)"}]}


@router.get("/api/v2/notifications/{group_key}", openapi_extra={**GROUP_KEY, **doc.BEARER},
            responses={**doc.ok(doc.GroupedNotifications), **doc.errors(401, 403, 404)})
async def notification_group(group_key: str, token: NotificationsReader, services: Services) -> Response:
    """One group, with its notifications (in its window, up to ``GROUP_PAGES`` pages) and its whole count, as a
    page holding it alone."""
    page = grouped_page(encode(await _group(group_key, token, services)), 1, False)
    spanned = [group_key] if isinstance(parse_group_key(group_key), GroupSpan) else []
    return Response(page.body(await _whole_counts(services, token, spanned)), media_type="application/json")


@router.get("/api/v2/notifications/{group_key}/accounts", openapi_extra={**GROUP_KEY, **doc.BEARER},
            responses={**doc.ok(list[doc.Account]), **doc.errors(401, 403, 404)})
async def notification_group_accounts(group_key: str, token: NotificationsReader, services: Services) -> Response:
    """Every account of a group, each once, the newest first."""
    accounts = {n["account"]["id"]: n["account"] for n in await _group(group_key, token, services)}
    return Response(encode(list(accounts.values())), media_type="application/json")


@router.post("/api/v2/notifications/{group_key}/dismiss", openapi_extra={**GROUP_KEY, **doc.BEARER},
             responses={**doc.ok(dict[str, str], "Every notification of the group dismissed"),
                        **doc.errors(401, 403, 404)})
async def dismiss_notification_group(group_key: str, token: NotificationsWriter, services: Services) -> Response:
    for notice in await _group(group_key, token, services):
        raise_for_error(await services.timeline.call(
            "POST", f"/internal/notifications/{notice['id']}/dismiss", token=token))
    return Response(b"{}", media_type="application/json")


@router.post("/api/v1/notifications/clear", openapi_extra=doc.BEARER,
             responses={**doc.ok(dict[str, str], "Every notification of the account dismissed"),
                        **doc.errors(401, 403)})
async def clear(token: NotificationsWriter, services: Services) -> Response:
    return passthrough(await services.timeline.call("POST", "/internal/notifications/clear", token=token))


# Ids are digits in the path itself (``:int``): otherwise GET /{notification_id} would also match /clear, and an
# OPTIONS of /clear would list GET among its methods. A path that is not digits is a 404, as any unknown path.
@router.get("/api/v1/notifications/{notification_id:int}", openapi_extra=doc.BEARER,
            responses={**doc.ok(doc.Notification), **doc.errors(401, 403, 404)})
async def notification(notification_id: int, token: NotificationsReader, services: Services) -> Response:
    return passthrough(await services.timeline.call(
        "GET", f"/internal/notifications/{record_id(str(notification_id))}", token=token))


@router.post("/api/v1/notifications/{notification_id:int}/dismiss", openapi_extra=doc.BEARER,
             responses={**doc.ok(dict[str, str], "Dismissed"), **doc.errors(401, 403, 404)})
async def dismiss(notification_id: int, token: NotificationsWriter, services: Services) -> Response:
    return passthrough(await services.timeline.call(
        "POST", f"/internal/notifications/{record_id(str(notification_id))}/dismiss", token=token))
