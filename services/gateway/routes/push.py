"""Web push subscriptions (kicau/web_push.py): the one subscription of the caller's access token, kept by the
graph service (services/graph/push_subscriptions.py) and served by the push service (services/push/)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kicau import tokens
from kicau.tokens import TokenInfo
from kicau.web import ApiError
from kicau.web_push import ALERTS, MAX_ENDPOINT_LENGTH, POLICIES, endpoint_problem, receiver_key_problem
from services.gateway import openapi as doc
from services.gateway.auth import bearer_value, require
from services.gateway.deps import Common, Services, Settings
from services.gateway.params import nested, optional_flag, read_params
from services.gateway.upstreams import passthrough

router = APIRouter(tags=["push"])

# Mastodon's scope for push subscriptions (granted by ``push``, never by ``read`` or ``write``).
PushUser = Annotated[TokenInfo, require("push")]

_ALERTS: dict[str, Any] = {"type": "object", "properties": {alert: doc.BOOLEAN for alert in ALERTS},
                           "additionalProperties": doc.CLEAN_REF}
_DATA: dict[str, Any] = {"type": "object", "properties": {"alerts": _ALERTS, "policy": {"enum": list(POLICIES)}},
                         "additionalProperties": doc.CLEAN_REF}
_KEY: dict[str, Any] = doc.text(min_length=1, max_length=200)
SUBSCRIBE_BODY = doc.json_body(doc.params({
    "subscription": {"type": "object", "required": ["endpoint", "keys"], "properties": {
        "endpoint": doc.text(min_length=1, max_length=MAX_ENDPOINT_LENGTH),
        "keys": {"type": "object", "required": ["p256dh", "auth"], "properties": {"p256dh": _KEY, "auth": _KEY},
                 "additionalProperties": doc.CLEAN_REF},
        "standard": doc.BOOLEAN,
    }, "additionalProperties": doc.CLEAN_REF},
    "data": _DATA,
    "policy": {"enum": list(POLICIES)},
}, "subscription"))
CHANGE_BODY = doc.json_body(doc.params({"data": _DATA, "policy": {"enum": list(POLICIES)}}), required=False)
ANSWERS = {**doc.ok(dict[str, Any], "The WebPushSubscription"), **doc.errors(400, 401, 403, 404, 413, 415, 422)}


def _token_hash(request: Request) -> str:
    bearer = bearer_value(request)
    assert bearer is not None, "a user token was required"
    return tokens.hash_token(bearer)


def _alerts(given: dict[str, Any]) -> list[str]:
    """The alerts turned on (``data[alerts][mention]=true``...); unknown names are ignored, as Mastodon does."""
    wanted = []
    for alert in ALERTS:
        value = nested(given, "data", "alerts", alert)
        if value is not None and optional_flag({f"data[alerts][{alert}]": value}, f"data[alerts][{alert}]"):
            wanted.append(alert)
    return wanted


def _policy(given: dict[str, Any]) -> str:
    """``data[policy]`` (Mastodon's), or ``policy`` (Mastodon.py's spelling); ``all`` when neither is given."""
    value = nested(given, "data", "policy")
    if value is None:
        value = given.get("policy")
    if value is None or value == "":
        return "all"
    if value not in POLICIES:
        raise ApiError(422, f"Validation failed: policy must be one of {', '.join(POLICIES)}")
    return str(value)


def _text(given: dict[str, Any], *path: str) -> str:
    value = nested(given, *path)
    name = path[0] + "".join(f"[{part}]" for part in path[1:])
    if value is None or value == "":
        raise ApiError(422, f"Validation failed: {name} can't be blank")
    if not isinstance(value, str):
        raise ApiError(422, f"Validation failed: {name} must be a string")
    return value


@router.get("/api/v1/push/subscription", openapi_extra=doc.BEARER, responses=ANSWERS)
async def subscription(request: Request, token: PushUser, services: Services) -> Response:
    """The push subscription of this access token; 404 without one."""
    return passthrough(await services.graph.call("GET", "/internal/push_subscription",
                                                 params={"token_hash": _token_hash(request)}, token=token))


@router.post("/api/v1/push/subscription", openapi_extra={**SUBSCRIBE_BODY, **doc.BEARER}, responses=ANSWERS)
async def subscribe(request: Request, token: PushUser, services: Services, settings: Settings,
                    common: Common) -> Response:
    """Subscribe this access token to web push (replacing its subscription, if any): `subscription[endpoint]`
    (https; where the push service POSTs), `subscription[keys][p256dh]` and `[auth]` (the receiver's P-256
    public key and 16-byte secret, base64), `subscription[standard]` (RFC 8291's aes128gcm instead of the older
    aesgcm), `data[alerts][<type>]` for each notification type wanted, `data[policy]` (all, followed, follower,
    none)."""
    given = await read_params(request, settings.max_body_bytes)
    endpoint = _text(given, "subscription", "endpoint")
    p256dh = _text(given, "subscription", "keys", "p256dh")
    auth = _text(given, "subscription", "keys", "auth")
    problem = (endpoint_problem(endpoint, allow_insecure=common.push_allow_insecure_endpoints)
               or receiver_key_problem(p256dh, auth))
    if problem:
        raise ApiError(422, problem)
    standard = optional_flag({"subscription[standard]": nested(given, "subscription", "standard")},
                             "subscription[standard]")
    return passthrough(await services.graph.call("POST", "/internal/push_subscription", json={
        "token_hash": _token_hash(request), "endpoint": endpoint, "p256dh": p256dh, "auth": auth,
        "alerts": _alerts(given), "policy": _policy(given), "standard": bool(standard),
    }, token=token))


@router.put("/api/v1/push/subscription", openapi_extra={**CHANGE_BODY, **doc.BEARER}, responses=ANSWERS)
async def change(request: Request, token: PushUser, services: Services, settings: Settings) -> Response:
    """Change which alerts this token's subscription wants and from whom, as Mastodon does: the alerts and
    policy given replace the old ones (an alert not named is off, no policy is `all`). 404 without one."""
    given = await read_params(request, settings.max_body_bytes)
    return passthrough(await services.graph.call("PUT", "/internal/push_subscription", json={
        "token_hash": _token_hash(request), "alerts": _alerts(given), "policy": _policy(given),
    }, token=token))


@router.delete("/api/v1/push/subscription", openapi_extra=doc.BEARER,
               responses={**doc.ok(dict[str, Any], "Unsubscribed"), **doc.errors(401, 403)})
async def unsubscribe(request: Request, token: PushUser, services: Services) -> Response:
    """Remove this token's push subscription (none: nothing changes)."""
    return passthrough(await services.graph.call("DELETE", "/internal/push_subscription",
                                                 params={"token_hash": _token_hash(request)}, token=token))
