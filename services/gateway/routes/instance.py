"""Instance metadata: what clients ask first (version, limits, where the stream is)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from kicau.featured_tags import MAX_FEATURED
from kicau.pins import MAX_PINS
from kicau.web import error_response
from services.gateway import openapi as doc
from services.gateway.deps import Common, Settings

router = APIRouter(tags=["instance"])

# Mastodon.py and toot read the version to decide which features they may use.
MASTODON_VERSION = "4.5.0"
MASTODON_API_VERSION = 6
KICAU_VERSION = "0.1.0"


def _streaming_url(public_url: str) -> str:
    return public_url.replace("https://", "wss://").replace("http://", "ws://")


@router.get("/api/v1/instance", responses=doc.errors())
@router.get("/api/v1/instance/", include_in_schema=False)
async def instance_v1(common: Common, settings: Settings) -> dict[str, Any]:
    return {
        "uri": common.instance_domain,
        "title": settings.instance_title,
        "short_description": "An event-driven microblog backend",
        "description": "Kicau speaks the Mastodon client API.",
        "email": f"admin@{common.instance_domain}",
        "version": MASTODON_VERSION,
        "urls": {"streaming_api": _streaming_url(common.public_url)},
        "stats": {"user_count": 0, "status_count": 0, "domain_count": 0},
        "thumbnail": None,
        "languages": ["en"],
        "registrations": True,
        "approval_required": False,
        "invites_enabled": False,
        "configuration": {
            "accounts": {"max_featured_tags": MAX_FEATURED},
            "statuses": {"max_characters": 500, "max_media_attachments": 0, "characters_reserved_per_url": 23},
            "media_attachments": {"supported_mime_types": []},
            "polls": {"max_options": 0, "max_characters_per_option": 0, "min_expiration": 0, "max_expiration": 0},
        },
        "contact_account": None,
        "rules": [],
    }


@router.get("/api/v2/instance", responses=doc.errors())
@router.get("/api/v2/instance/", include_in_schema=False)
async def instance_v2(common: Common, settings: Settings) -> dict[str, Any]:
    return {
        "domain": common.instance_domain,
        "title": settings.instance_title,
        "version": MASTODON_VERSION,
        "source_url": "https://example.invalid/kicau",
        "description": "Kicau speaks the Mastodon client API.",
        "usage": {"users": {"active_month": 0}},
        "thumbnail": {"url": f"{common.public_url}/thumbnail.png"},
        "languages": ["en"],
        "api_versions": {"mastodon": MASTODON_API_VERSION},
        "configuration": {
            "urls": {"streaming": _streaming_url(common.public_url), "status": None},
            "accounts": {"max_featured_tags": MAX_FEATURED, "max_pinned_statuses": MAX_PINS},
            "statuses": {"max_characters": 500, "max_media_attachments": 0, "characters_reserved_per_url": 23},
            "media_attachments": {"supported_mime_types": []},
            "polls": {"max_options": 0, "max_characters_per_option": 0, "min_expiration": 0, "max_expiration": 0},
            "translation": {"enabled": False},
            "timelines_access": {
                "live_feeds": {"local": "public", "remote": "public"},
                "hashtag_feeds": {"local": "public", "remote": "public"},
                "trending_link_feeds": {"local": "public", "remote": "public"},
            },
        },
        "registrations": {"enabled": True, "approval_required": False, "message": None},
        "contact": {"email": f"admin@{common.instance_domain}", "account": None},
        "rules": [],
    }


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
