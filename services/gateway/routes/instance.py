"""Instance metadata: what clients ask first (version, limits, where the stream is)."""

from __future__ import annotations

import html
import struct
import time
import zlib
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kicau import instance_usage, media, polls
from kicau.entities import MAX_PROFILE_FIELD_CHARS, MAX_PROFILE_FIELDS
from kicau.featured_tags import MAX_FEATURED
from kicau.pins import MAX_PINS
from kicau.web import ApiError, error_response
from services.gateway import openapi as doc
from services.gateway.deps import Common, Settings
from services.gateway.settings import GatewaySettings

router = APIRouter(tags=["instance"])

# Mastodon.py and toot read the version to decide which features they may use.
MASTODON_VERSION = "4.5.0"
MASTODON_API_VERSION = 6
KICAU_VERSION = "0.1.0"


async def _usage_of(request: Request, settings: GatewaySettings) -> instance_usage.Usage:
    """The server's use (kicau/instance_usage.py), read by this process at most once in
    ``instance_usage_seconds`` (clients ask for the instance on every start)."""
    now = time.monotonic()
    kept: tuple[float, instance_usage.Usage] | None = getattr(request.app.state, "instance_usage", None)
    if kept is None or now - kept[0] >= settings.instance_usage_seconds:
        kept = request.app.state.instance_usage = (now, await instance_usage.usage(request.app.state.redis))
    return kept[1]


async def _activity_of(request: Request, settings: GatewaySettings) -> list[dict[str, str]]:
    """The server's weekly activity (kicau/instance_usage.py), read as the usage above, as often at most."""
    now = time.monotonic()
    kept: tuple[float, list[dict[str, str]]] | None = getattr(request.app.state, "instance_activity", None)
    if kept is None or now - kept[0] >= settings.instance_usage_seconds:
        kept = request.app.state.instance_activity = (now, await instance_usage.activity(request.app.state.redis))
    return kept[1]


def _streaming_url(public_url: str) -> str:
    return public_url.replace("https://", "wss://").replace("http://", "ws://")


@router.get("/api/v1/instance", responses=doc.errors())
@router.get("/api/v1/instance/", include_in_schema=False)
async def instance_v1(request: Request, common: Common, settings: Settings) -> dict[str, Any]:
    usage = await _usage_of(request, settings)
    return {
        "uri": common.instance_domain,
        "title": settings.instance_title,
        "short_description": "An event-driven microblog backend",
        "description": settings.instance_description,
        "email": f"admin@{common.instance_domain}",
        "version": MASTODON_VERSION,
        "urls": {"streaming_api": _streaming_url(common.public_url)},
        # No other server is known (Kicau does not federate): no domain.
        "stats": {"user_count": usage.accounts, "status_count": usage.statuses, "domain_count": 0},
        "thumbnail": None,
        "languages": ["en"],
        "registrations": True,
        "approval_required": False,
        "invites_enabled": False,
        "configuration": {
            "accounts": {"max_featured_tags": MAX_FEATURED},
            "statuses": {"max_characters": 500, "max_media_attachments": media.MAX_PER_STATUS,
                         "characters_reserved_per_url": 23},
            "media_attachments": media.CONFIGURATION,
            "polls": polls.CONFIGURATION,
        },
        "contact_account": None,
        "rules": _rules(settings),
    }


@router.get("/api/v2/instance", responses=doc.errors())
@router.get("/api/v2/instance/", include_in_schema=False)
async def instance_v2(request: Request, common: Common, settings: Settings) -> dict[str, Any]:
    usage = await _usage_of(request, settings)
    return {
        "domain": common.instance_domain,
        "title": settings.instance_title,
        "version": MASTODON_VERSION,
        "source_url": "https://example.invalid/kicau",
        "description": settings.instance_description,
        "usage": {"users": {"active_month": usage.active_month}},
        "thumbnail": {"url": f"{common.public_url}/thumbnail.png"},
        "languages": ["en"],
        "api_versions": {"mastodon": MASTODON_API_VERSION},
        "configuration": {
            "urls": {"streaming": _streaming_url(common.public_url), "status": None},
            "accounts": {"max_featured_tags": MAX_FEATURED, "max_pinned_statuses": MAX_PINS,
                         "max_profile_fields": MAX_PROFILE_FIELDS,
                         "profile_field_name_limit": MAX_PROFILE_FIELD_CHARS,
                         "profile_field_value_limit": MAX_PROFILE_FIELD_CHARS},
            "statuses": {"max_characters": 500, "max_media_attachments": media.MAX_PER_STATUS,
                         "characters_reserved_per_url": 23},
            "media_attachments": media.CONFIGURATION,
            "polls": polls.CONFIGURATION,
            "translation": {"enabled": False},
            "vapid": {"public_key": await _vapid_key(request)},
            "timelines_access": {
                "live_feeds": {"local": "public", "remote": "public"},
                "hashtag_feeds": {"local": "public", "remote": "public"},
                "trending_link_feeds": {"local": "public", "remote": "public"},
            },
        },
        "registrations": {"enabled": True, "approval_required": False, "message": None},
        "contact": {"email": f"admin@{common.instance_domain}", "account": None},
        "rules": _rules(settings),
    }


async def _vapid_key(request: Request) -> str:
    """The instance's VAPID public key (kicau/web_push.py), asked of the graph service once and kept: it never
    changes (every push subscription is bound to it)."""
    known: str | None = getattr(request.app.state, "vapid_key", None)
    if known is None:
        answer = await request.app.state.graph.call("GET", "/internal/push/server_key")
        if answer.status_code != 200:
            raise ApiError(503, "Service temporarily unavailable, try again")
        known = str(answer.json()["public_key"])
        request.app.state.vapid_key = known
    return known


def _rules(settings: GatewaySettings) -> list[dict[str, str]]:
    """Mastodon's Rule entities, numbered in order."""
    return [{"id": str(number), "text": text, "hint": ""}
            for number, text in enumerate(settings.instance_rules, start=1)]


@router.get("/api/v1/instance/activity", responses={**doc.ok(list[dict[str, str]]), **doc.errors()})
async def activity(request: Request, settings: Settings) -> list[dict[str, str]]:
    """The last 12 weeks (from Monday, UTC), this one first: statuses posted, accounts signed in, registrations
    (kicau/instance_usage.py); Mastodon's numbers as strings, the week's start as epoch seconds."""
    return await _activity_of(request, settings)


@router.get("/api/v1/instance/rules", responses={**doc.ok(list[Any]), **doc.errors()})
async def rules(settings: Settings) -> list[dict[str, str]]:
    """The server's rules (``KICAU_GATEWAY_INSTANCE_RULES``), as sign-up and report screens show them."""
    return _rules(settings)


@router.get("/api/v1/instance/extended_description", responses={**doc.ok(Any), **doc.errors()})
async def extended_description(settings: Settings) -> dict[str, Any]:
    """The server's longer "about" text (``KICAU_GATEWAY_INSTANCE_EXTENDED_DESCRIPTION``) as HTML: a paragraph for
    each part apart by a blank line, escaped. No time it was changed is known (it is configuration)."""
    parts = [part.strip() for part in settings.instance_extended_description.split("\n\n") if part.strip()]
    content = "".join(f"<p>{html.escape(part).replace(chr(10), '<br>')}</p>" for part in parts)
    return {"updated_at": None, "content": content}


@router.get("/api/v1/instance/peers", responses={**doc.ok(list[str]), **doc.errors()})
async def peers() -> list[str]:
    """The other servers this one knows: none, as Kicau federates with no one."""
    return []


@router.get("/api/v1/instance/translation_languages", responses={**doc.ok(Any), **doc.errors()})
async def translation_languages() -> dict[str, list[str]]:
    """What statuses may be translated into, from each language: nothing (``translation.enabled`` is false)."""
    return {}


def _solid_png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A PNG of one colour (8-bit RGB, no filter), as the PNG specification lays one out."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = (b"\x00" + bytes(rgb) * width) * height
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


# The instance's picture, which /api/v2/instance names and clients show on its "about" page: Kicau's colour.
THUMBNAIL = _solid_png(64, 64, (0x2E, 0x7D, 0x32))


@router.get("/thumbnail.png", include_in_schema=False)
async def thumbnail() -> Response:
    return Response(THUMBNAIL, media_type="image/png", headers={"Cache-Control": "public, max-age=86400"})


# Every account's avatar and header (kicau/entities.py names them, as Mastodon's "missing" pictures): clients load
# them for every account they show, and a 404 drew a broken image.
DEFAULT_AVATAR = _solid_png(120, 120, (0x9E, 0x9E, 0x9E))
DEFAULT_HEADER = _solid_png(300, 100, (0x61, 0x61, 0x61))


@router.get("/avatars/original/missing.png", include_in_schema=False)
async def default_avatar() -> Response:
    return Response(DEFAULT_AVATAR, media_type="image/png", headers={"Cache-Control": "public, max-age=86400"})


@router.get("/headers/original/missing.png", include_in_schema=False)
async def default_header() -> Response:
    return Response(DEFAULT_HEADER, media_type="image/png", headers={"Cache-Control": "public, max-age=86400"})


@router.get("/api/v1/custom_emojis", responses={**doc.ok(list[Any]), **doc.errors()})
async def custom_emojis() -> list[Any]:
    """The server's custom emoji, which clients load on start: Kicau has none."""
    return []


# The scopes an app may ask (services/graph/service.py takes any scope under these five): Mastodon's list.
SCOPES_SUPPORTED = (
    "read", "write", "follow", "push", "profile",
    *(f"read:{s}" for s in ("accounts", "blocks", "bookmarks", "favourites", "filters", "follows", "lists",
                            "mutes", "notifications", "search", "statuses")),
    *(f"write:{s}" for s in ("accounts", "blocks", "bookmarks", "conversations", "favourites", "filters",
                             "follows", "lists", "media", "mutes", "notifications", "reports", "statuses")),
)


@router.get("/.well-known/oauth-authorization-server", include_in_schema=False)
async def oauth_metadata(common: Common) -> Any:
    """The authorization server's metadata (RFC 8414), as Mastodon 4.3 and later serve it, for an instance served
    over https. Over http (a local instance) it is a 404: Mastodon.py refuses any endpoint found here that is not
    https, and without this document it uses the usual paths."""
    base = common.public_url.rstrip("/")
    if not base.startswith("https://"):
        return error_response(404, "Record not found")
    return {
        "issuer": f"{base}/",
        "service_documentation": "https://docs.joinmastodon.org/",
        "authorization_endpoint": f"{base}/oauth/authorize",
        "token_endpoint": f"{base}/oauth/token",
        "revocation_endpoint": f"{base}/oauth/revoke",
        "app_registration_endpoint": f"{base}/api/v1/apps",
        "scopes_supported": list(SCOPES_SUPPORTED),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "password", "client_credentials"],
        # The client's credentials are read from the request's body only (no HTTP Basic).
        "token_endpoint_auth_methods_supported": ["client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
    }
