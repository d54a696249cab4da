"""Instance metadata: what clients ask first (version, limits, where the stream is)."""

from __future__ import annotations

import html
import struct
import time
import zlib
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import Response

import kicau
from kicau import instance_usage, languages, media, polls
from kicau.entities import MAX_PROFILE_FIELD_CHARS, MAX_PROFILE_FIELDS
from kicau.featured_tags import MAX_FEATURED
from kicau.pins import MAX_PINS
from kicau.staff import ADMIN_SCOPES
from kicau.web import ApiError, error_response
from services.gateway import openapi as doc
from services.gateway.deps import Common, Settings
from services.gateway.settings import GatewaySettings, TermsVersion

router = APIRouter(tags=["instance"])

# Mastodon.py and toot read the version to decide which features they may use.
MASTODON_VERSION = "4.5.0"
# 7: Mastodon 4.5's quote posts (kicau/quotes.py), which clients look for before they offer quoting.
MASTODON_API_VERSION = 7
KICAU_VERSION = kicau.__version__


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
        "registrations": common.registrations_mode != "none",
        "approval_required": common.registrations_mode == "approved",
        "invites_enabled": False,
        "configuration": {
            "accounts": {"max_featured_tags": MAX_FEATURED},
            "statuses": {"max_characters": common.max_characters, "max_media_attachments": media.MAX_PER_STATUS,
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
            "statuses": {"max_characters": common.max_characters, "max_media_attachments": media.MAX_PER_STATUS,
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
        "registrations": {"enabled": common.registrations_mode != "none",
                          "approval_required": common.registrations_mode == "approved", "message": None,
                          "reason_required": common.reason_required, "min_age": None},
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


def _paragraphs(text: str) -> str:
    """An operator's plain text as HTML: a paragraph for each part apart by a blank line, line breaks kept,
    everything escaped."""
    parts = [part.strip() for part in text.split("\n\n") if part.strip()]
    return "".join(f"<p>{html.escape(part).replace(chr(10), '<br>')}</p>" for part in parts)


@router.get("/api/v1/instance/extended_description", responses={**doc.ok(Any), **doc.errors()})
async def extended_description(settings: Settings) -> dict[str, Any]:
    """The server's longer "about" text (``KICAU_GATEWAY_INSTANCE_EXTENDED_DESCRIPTION``) as HTML: a paragraph for
    each part apart by a blank line, escaped. No time it was changed is known (it is configuration)."""
    return {"updated_at": None, "content": _paragraphs(settings.instance_extended_description)}


# Kicau's own privacy policy, for a server whose operator wrote none: what this code keeps and shows, no more.
DEFAULT_PRIVACY_POLICY = """\
This server runs Kicau. This policy says what Kicau keeps about you and who may see it; the people who run this \
server may keep more (their own logs and backups) and should say so here.

What is kept: your account (username, e-mail address, display name, profile fields and pictures, and an Argon2id \
hash of your password, never the password); what you post (statuses, their earlier versions when edited, \
attachments, polls and your votes); whom you follow, mute and block, your lists, filters, bookmarks, favourites, \
reblogs, pins, notes on accounts, reports and reading positions; the apps you authorised, each access token as a \
hash only; for web push, the address and keys your device gave.

Who sees it: public and unlisted statuses, anyone; followers-only statuses, your followers; direct statuses, the \
accounts they mention; your profile, follows and followers, anyone. Your e-mail address, password hash, mutes, \
blocks, lists, filters, bookmarks, notes and reports are shown to you alone (a report to the moderators). Push \
notifications are encrypted for your device before they leave the server.

Addresses: requests without an account are counted by IP address for rate limiting; those counts expire within \
the hour. Kicau writes no log of who read what.

Deleting a status removes it from every timeline and stream; its record is kept marked as deleted, \
without being shown, so that copies replayed later are recognised and stay deleted.
"""
DEFAULT_PRIVACY_POLICY_UPDATED_AT = datetime(2026, 12, 5, tzinfo=UTC)


def _timestamp(when: datetime) -> str:
    """Mastodon's datetime form: UTC, milliseconds, ``Z``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


@router.get("/api/v1/instance/privacy_policy", responses={**doc.ok(Any), **doc.errors()})
async def privacy_policy(settings: Settings) -> dict[str, Any]:
    """The server's privacy policy as HTML (``KICAU_GATEWAY_INSTANCE_PRIVACY_POLICY``, paragraphs escaped as the
    "about" text's) and when it last changed (``..._UPDATED_AT``); without one, Kicau's own."""
    if settings.instance_privacy_policy.strip():
        text, updated = settings.instance_privacy_policy, settings.instance_privacy_policy_updated_at
    else:
        text, updated = DEFAULT_PRIVACY_POLICY, DEFAULT_PRIVACY_POLICY_UPDATED_AT
    return {"updated_at": _timestamp(updated) if updated is not None else None, "content": _paragraphs(text)}


def terms_in_force(versions: Sequence[TermsVersion], today: date) -> TermsVersion | None:
    """The terms that apply today: the newest version already in effect, or (none yet) the first to come."""
    started = [v for v in versions if v.effective_date <= today]
    if started:
        return max(started, key=lambda v: v.effective_date)
    return min(versions, key=lambda v: v.effective_date, default=None)


def terms_entity(version: TermsVersion, versions: Sequence[TermsVersion], today: date) -> dict[str, Any]:
    """Mastodon's TermsOfService: the version's day, whether it is in effect, its text and the day of the version
    that replaces it (None: none planned)."""
    later = [v.effective_date for v in versions if v.effective_date > version.effective_date]
    return {"effective_date": version.effective_date.isoformat(), "effective": version.effective_date <= today,
            "content": _paragraphs(version.text), "succeeded_by": min(later).isoformat() if later else None}


@router.get("/api/v1/instance/terms_of_service", responses={**doc.ok(Any), **doc.errors(404)})
async def terms_of_service(settings: Settings, date: str | None = None) -> Any:
    """The terms of service in force (``KICAU_GATEWAY_INSTANCE_TERMS_OF_SERVICE``), or the first to come if none
    is yet, with the day of the version after it; 404 when the server has none. ``date`` (Mastodon.py asks so):
    as ``/terms_of_service/:date``."""
    if date is not None:
        return await terms_of_service_of(date, settings)
    today = datetime.now(UTC).date()
    versions = settings.instance_terms_of_service
    version = terms_in_force(versions, today)
    if version is None:
        return error_response(404, "Record not found")
    return terms_entity(version, versions, today)


@router.get("/api/v1/instance/terms_of_service/{effective_date}", responses={**doc.ok(Any), **doc.errors(404)})
async def terms_of_service_of(effective_date: str, settings: Settings) -> Any:
    """The version of the terms that takes effect on ``effective_date`` (YYYY-MM-DD); 404 for any other day."""
    today = datetime.now(UTC).date()
    versions = settings.instance_terms_of_service
    for version in versions:
        if version.effective_date.isoformat() == effective_date:
            return terms_entity(version, versions, today)
    return error_response(404, "Record not found")


@router.get("/api/v1/instance/languages", responses={**doc.ok(list[dict[str, str]]), **doc.errors()})
async def instance_languages() -> list[dict[str, str]]:
    """The languages a status may be marked with (ISO 639-1 codes, English names; kicau/languages.py)."""
    return languages.entities()


@router.get("/api/v1/instance/domain_blocks", responses={**doc.ok(list[Any]), **doc.errors()})
async def instance_domain_blocks() -> list[Any]:
    """The servers this one limits or suspends: none, as Kicau federates with no one."""
    return []


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


# The scopes an app may ask (services/graph/service.py takes any scope under these five, and the admin scopes of
# kicau/staff.py): Mastodon's list.
SCOPES_SUPPORTED = (
    "read", "write", "follow", "push", "profile",
    *(f"read:{s}" for s in ("accounts", "blocks", "bookmarks", "favourites", "filters", "follows", "lists",
                            "mutes", "notifications", "search", "statuses")),
    *(f"write:{s}" for s in ("accounts", "blocks", "bookmarks", "conversations", "favourites", "filters",
                             "follows", "lists", "media", "mutes", "notifications", "reports", "statuses")),
    *ADMIN_SCOPES,
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
        "userinfo_endpoint": f"{base}/oauth/userinfo",
        "app_registration_endpoint": f"{base}/api/v1/apps",
        "scopes_supported": list(SCOPES_SUPPORTED),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "password", "client_credentials"],
        # The client's credentials are read from the request's body only (no HTTP Basic).
        "token_endpoint_auth_methods_supported": ["client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
    }


# NodeInfo (nodeinfo.diaspora.software): which software a server runs and how much it is used, where clients and
# directories look first (Mastodon.py's ``instance_nodeinfo``; web clients that tell servers apart by software).
NODEINFO_SCHEMA = "http://nodeinfo.diaspora.software/ns/schema/"
NODEINFO_VERSIONS = ("2.0", "2.1")


@router.get("/.well-known/nodeinfo", include_in_schema=False)
async def nodeinfo_links(common: Common) -> dict[str, Any]:
    return {"links": [{"rel": f"{NODEINFO_SCHEMA}{version}", "href": f"{common.public_url}/nodeinfo/{version}"}
                      for version in NODEINFO_VERSIONS]}


@router.get("/nodeinfo/{version}", include_in_schema=False)
async def nodeinfo(version: str, request: Request, common: Common, settings: Settings) -> Response:
    """The document in schema 2.0 or 2.1 (2.1 adds the software's repository and homepage, which Kicau leaves
    out as it has no public one). ``protocols`` is empty: Kicau speaks no federation protocol, and naming one
    (Mastodon names ``activitypub``) would send other servers here for nothing, though the schema asks for one."""
    if version not in NODEINFO_VERSIONS:
        return error_response(404, "Record not found")
    usage = await _usage_of(request, settings)
    document = {
        "version": version,
        "software": {"name": "kicau", "version": KICAU_VERSION},
        "protocols": [],
        "services": {"inbound": [], "outbound": []},
        "openRegistrations": True,
        "usage": {"users": {"total": usage.accounts, "activeMonth": usage.active_month,
                            "activeHalfyear": usage.active_halfyear},
                  "localPosts": usage.statuses},
        "metadata": {"nodeName": settings.instance_title, "nodeDescription": settings.instance_description,
                     "mastodonApiVersion": MASTODON_VERSION},
    }
    profile = f'application/json; profile="{NODEINFO_SCHEMA}{version}#"'
    return Response(msgspec.json.encode(document), media_type=profile,
                    headers={"Cache-Control": "public, max-age=1800"})
