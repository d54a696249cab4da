"""Markers (kicau/markers.py): where the user stopped reading its home timeline and its notifications, saved by
one client and read by the others; kept by the timeline service."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kicau.ids import parse_id
from kicau.markers import TIMELINES
from kicau.tokens import TokenInfo
from kicau.web import ApiError
from services.gateway import openapi as doc
from services.gateway.auth import require
from services.gateway.deps import Services, Settings
from services.gateway.params import read_params, reject_nul
from services.gateway.upstreams import passthrough

router = APIRouter(tags=["markers"])

# As Mastodon: a marker is a reading position in the user's statuses.
StatusesReader = Annotated[TokenInfo, require("read:statuses")]
StatusesWriter = Annotated[TokenInfo, require("write:statuses")]

# Bounds on the names a read may give (Mastodon has two timelines with markers).
MAX_NAMES, MAX_NAME_LENGTH = 10, 64
TIMELINE_NAMES = {"type": "array", "items": doc.text(max_length=MAX_NAME_LENGTH), "maxItems": MAX_NAMES}


@router.get("/api/v1/markers", openapi_extra={**doc.BEARER, "parameters": [
    doc.query("timeline[]", TIMELINE_NAMES, "The timelines whose markers to answer: home, notifications"),
]}, responses={**doc.ok(dict[str, doc.Marker]), **doc.errors(401, 403)})
async def markers(request: Request, token: StatusesReader, services: Services) -> Response:
    """The user's markers of the timelines asked for (`timeline[]`, repeated), each only if ever saved; others
    are ignored, as Mastodon does."""
    query = request.query_params
    given = query.getlist("timeline[]") + query.getlist("timeline")
    if len(given) > MAX_NAMES or any(len(name) > MAX_NAME_LENGTH for name in given):
        raise ApiError(422, f"Validation failed: timeline names at most {MAX_NAMES} timelines of {MAX_NAME_LENGTH}"
                            " characters")
    asked = [name for name in given if reject_nul("timeline", name) in TIMELINES]
    return passthrough(await services.timeline.call("GET", "/internal/markers",
                                                    params={"timeline": ",".join(asked)}, token=token))


@router.post("/api/v1/markers", openapi_extra={**doc.MARKERS_BODY, **doc.BEARER},
             responses={**doc.ok(dict[str, doc.Marker]), **doc.errors(400, 401, 403, 409, 413, 415, 422)})
async def save_markers(request: Request, token: StatusesWriter, services: Services, settings: Settings) -> Response:
    """Save where the user stopped reading: `home[last_read_id]` and/or `notifications[last_read_id]` (or in
    JSON, `{"home": {"last_read_id": ...}}`); the markers saved, each with its new version."""
    given = await read_params(request, settings.max_body_bytes)
    wanted: dict[str, int] = {}
    for timeline in TIMELINES:
        value = _last_read_id(given, timeline)
        if value is None:
            continue
        last_read_id = parse_id(value) if isinstance(value, str | int) and not isinstance(value, bool) else None
        if last_read_id is None:
            raise ApiError(422, f"Validation failed: {timeline}'s last_read_id must be a status or notification id")
        wanted[timeline] = last_read_id
    if not wanted:
        return Response(b"{}", media_type="application/json")
    return passthrough(await services.timeline.call("POST", "/internal/markers", json=wanted, token=token))


def _last_read_id(given: dict[str, Any], timeline: str) -> Any:
    """The timeline's ``last_read_id`` as a form gives it (``home[last_read_id]``) or JSON (nested); None if the
    timeline is not named at all. A timeline named without one is a 422 (Mastodon: it can't be blank)."""
    flat = f"{timeline}[last_read_id]"
    if flat in given:
        return given[flat] if given[flat] != "" else False
    if timeline not in given:
        return None
    nested = given[timeline]
    if not isinstance(nested, dict) or nested.get("last_read_id") in (None, ""):
        return False
    return nested["last_read_id"]
