"""Notification policies and requests (kicau/notification_policies.py), through the timeline service: what an
account holds back from strangers, and the senders whose held notifications wait for it to accept or dismiss them.

These paths come before the notifications' own (routes/notifications.py) in the gateway's routes:
``/api/v2/notifications/{group_key}`` would take ``policy`` for a group key."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kicau.notification_policies import ACCEPT, FIELDS, FILTER, V1_FIELDS, VERDICTS
from kicau.tokens import TokenInfo
from kicau.web import ApiError
from services.gateway import openapi as doc
from services.gateway.auth import require
from services.gateway.deps import Common, Services, Settings, cursor, page_limit, record_id
from services.gateway.pagination import link_header
from services.gateway.params import optional_flag, read_params
from services.gateway.settings import GatewaySettings
from services.gateway.upstreams import passthrough, raise_for_error

router = APIRouter(tags=["notifications"])

NotificationsReader = Annotated[TokenInfo, require("read:notifications")]
NotificationsWriter = Annotated[TokenInfo, require("write:notifications")]

# Mastodon's bulk accept and dismiss take this many requests at most.
MAX_BULK = 100

V2_BODY = doc.body(doc.params({name: doc.nullable({"type": "string", "enum": list(VERDICTS)}) for name in FIELDS}),
                   required=False)
V1_BODY = doc.body(doc.params({name: doc.nullable(doc.BOOLEAN) for name in V1_FIELDS}), required=False)
PAGE = {"parameters": doc.page_parameters("max_id", "since_id", "min_id")}
BULK = {"parameters": [doc.query("id[]", {"type": "array", "items": doc.CURSOR, "maxItems": MAX_BULK},
                                 "The requests (ids: their senders' account ids)")]}


async def _policy(token: TokenInfo, services: Services) -> dict[str, Any]:
    answer = await services.timeline.call("GET", "/internal/notifications/policy", token=token)
    raise_for_error(answer)
    policy: dict[str, Any] = answer.json()
    return policy


async def _change(token: TokenInfo, services: Services, given: dict[str, str]) -> dict[str, Any]:
    answer = await services.timeline.call("PATCH", "/internal/notifications/policy", params=given, token=token)
    raise_for_error(answer)
    policy: dict[str, Any] = answer.json()
    return policy


def _v1(policy: dict[str, Any]) -> dict[str, Any]:
    return {**{v1: policy[name] != ACCEPT for v1, name in V1_FIELDS.items()}, "summary": policy["summary"]}


@router.get("/api/v2/notifications/policy", openapi_extra=doc.BEARER,
            responses={**doc.ok(doc.NotificationPolicy), **doc.errors(401, 403)})
async def notification_policy(token: NotificationsReader, services: Services) -> dict[str, Any]:
    """What the user accepts, filters or drops from each kind of stranger, and how much waits in requests."""
    return await _policy(token, services)


@router.patch("/api/v2/notifications/policy", openapi_extra={**V2_BODY, **doc.BEARER},
              responses={**doc.ok(doc.NotificationPolicy), **doc.errors(400, 401, 403, 413, 415, 422)})
async def change_notification_policy(request: Request, token: NotificationsWriter, services: Services,
                                     settings: Settings) -> dict[str, Any]:
    """Change any of ``for_not_following``, ``for_not_followers``, ``for_new_accounts``, ``for_private_mentions``,
    ``for_limited_accounts`` to ``accept``, ``filter`` or ``drop``; the others stay."""
    given = await read_params(request, settings.max_body_bytes)
    changes: dict[str, str] = {}
    for name in FIELDS:
        value = given.get(name)
        if value is None:
            continue
        if value not in VERDICTS:
            raise ApiError(422, f"Validation failed: {name} must be one of {', '.join(VERDICTS)}")
        changes[name] = value
    return await _change(token, services, changes) if changes else await _policy(token, services)


@router.get("/api/v1/notifications/policy", openapi_extra=doc.BEARER,
            responses={**doc.ok(doc.NotificationPolicyV1), **doc.errors(401, 403)})
async def notification_policy_v1(token: NotificationsReader, services: Services) -> dict[str, Any]:
    """Mastodon 4.2's view of the policy: whether each kind is filtered (a drop reads as filtered)."""
    return _v1(await _policy(token, services))


@router.put("/api/v1/notifications/policy", openapi_extra={**V1_BODY, **doc.BEARER},
            responses={**doc.ok(doc.NotificationPolicyV1), **doc.errors(400, 401, 403, 413, 415, 422)})
async def change_notification_policy_v1(request: Request, token: NotificationsWriter, services: Services,
                                        settings: Settings) -> dict[str, Any]:
    """Mastodon 4.2's change: true filters a kind, false accepts it."""
    given = await read_params(request, settings.max_body_bytes)
    changes = {name: FILTER if flag else ACCEPT for v1, name in V1_FIELDS.items()
               if (flag := optional_flag(given, v1)) is not None}
    return _v1(await _change(token, services, changes) if changes else await _policy(token, services))


@router.get("/api/v1/notifications/requests", openapi_extra={**PAGE, **doc.BEARER},
            responses={**doc.ok(list[doc.NotificationRequest]), **doc.errors(400, 401, 403)})
async def notification_requests(request: Request, token: NotificationsReader, services: Services,
                                common: Common) -> Response:
    """The senders whose mentions the user's policy held back, each with its newest and how many wait (40, at
    most 80, a page; a request's id is its sender's account id)."""
    query = request.query_params
    params: dict[str, object] = {"limit": page_limit(query.get("limit"), 40, 80)}
    for name in ("max_id", "since_id", "min_id"):
        value = cursor(query.get(name), name)
        if value is not None:
            params[name] = value
    answer = await services.timeline.call("GET", "/internal/notifications/requests", params=params, token=token)
    raise_for_error(answer)
    link = link_header(request, common.public_url, answer.headers.get("x-kicau-next"),
                       answer.headers.get("x-kicau-prev"))
    return Response(answer.content, media_type="application/json", headers={"Link": link} if link else None)


@router.get("/api/v1/notifications/requests/merged", openapi_extra=doc.BEARER,
            responses={**doc.ok(dict[str, bool], "Whether accepted requests are merged"), **doc.errors(401, 403)})
async def requests_merged(token: NotificationsReader) -> dict[str, bool]:
    """Always true: an accepted request's notifications are in the user's list by the time it is answered."""
    return {"merged": True}


async def _bulk_ids(request: Request, settings: GatewaySettings) -> list[int]:
    """``id[]`` (``id``), and ``id[][]``, which Mastodon.py sends (it appends ``[]`` to a list's name again)."""
    given = await read_params(request, settings.max_body_bytes)
    values: list[Any] = []
    for name in ("id", "id[]"):
        raw = given.get(name, [])
        values += raw if isinstance(raw, list) else [raw]
    if len(values) > MAX_BULK:
        raise ApiError(422, f"Validation failed: at most {MAX_BULK} requests at once")
    ids = [cursor(str(value), "id") for value in values]
    return [i for i in ids if i is not None]


async def _answer(services: Services, token: TokenInfo, answer: str, ids: list[int]) -> Response:
    if ids:
        raise_for_error(await services.timeline.call(
            "POST", f"/internal/notifications/requests/{answer}", params={"ids": ",".join(map(str, ids))},
            token=token))
    return Response(b"{}", media_type="application/json")


@router.post("/api/v1/notifications/requests/accept", openapi_extra={**BULK, **doc.BEARER},
             responses={**doc.ok(dict[str, str], "Accepted"), **doc.errors(400, 401, 403, 413, 415, 422)})
async def accept_requests(request: Request, token: NotificationsWriter, services: Services,
                          settings: Settings) -> Response:
    """Accept several requests at once (``id[]``); those that are not there are no matter."""
    return await _answer(services, token, "accept", await _bulk_ids(request, settings))


@router.post("/api/v1/notifications/requests/dismiss", openapi_extra={**BULK, **doc.BEARER},
             responses={**doc.ok(dict[str, str], "Dismissed"), **doc.errors(400, 401, 403, 413, 415, 422)})
async def dismiss_requests(request: Request, token: NotificationsWriter, services: Services,
                           settings: Settings) -> Response:
    """Dismiss several requests at once (``id[]``): their held notifications are deleted."""
    return await _answer(services, token, "dismiss", await _bulk_ids(request, settings))


@router.get("/api/v1/notifications/requests/{request_id}", openapi_extra=doc.BEARER,
            responses={**doc.ok(doc.NotificationRequest), **doc.errors(401, 403, 404)})
async def notification_request(request_id: str, token: NotificationsReader, services: Services) -> Response:
    return passthrough(await services.timeline.call(
        "GET", f"/internal/notifications/requests/{record_id(request_id)}", token=token))


async def _one(request_id: str, token: TokenInfo, services: Services, answer: str) -> Response:
    sender = record_id(request_id)
    raise_for_error(await services.timeline.call("GET", f"/internal/notifications/requests/{sender}",
                                                  token=token))  # 404 for a request that is not there
    return await _answer(services, token, answer, [sender])


@router.post("/api/v1/notifications/requests/{request_id}/accept", openapi_extra=doc.BEARER,
             responses={**doc.ok(dict[str, str], "Accepted"), **doc.errors(401, 403, 404)})
async def accept_request(request_id: str, token: NotificationsWriter, services: Services) -> Response:
    """Accept a request: its notifications join the user's list, and its sender is never filtered again."""
    return await _one(request_id, token, services, "accept")


@router.post("/api/v1/notifications/requests/{request_id}/dismiss", openapi_extra=doc.BEARER,
             responses={**doc.ok(dict[str, str], "Dismissed"), **doc.errors(401, 403, 404)})
async def dismiss_request(request_id: str, token: NotificationsWriter, services: Services) -> Response:
    """Dismiss a request: its held notifications are deleted (new ones from the sender are held again)."""
    return await _one(request_id, token, services, "dismiss")
