"""Mastodon entity shapes (Account, Status, Relationship), rendered once and reused as bytes.

A Status is stored and cached as a *fragment*: its JSON without the ``account`` member. Readers splice the
author's cached Account JSON in front (:func:`compose_status`) so neither is parsed or re-encoded on reads.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from kicau import hashtags, media, polls, posting_defaults, quotes
from kicau.account_notes import Annotations
from kicau.blocks_and_mutes import Between
from kicau.follow_options import FollowOptions
from kicau.links import addresses as web_addresses
from kicau.links import link_html as web_link_html
from kicau.mentions import MENTION, Mention, link_html, local_domains, local_username, stored
from kicau.mentions import entity as mention_entity

_encode = msgspec.json.Encoder().encode

# The profile fields an account may change (PATCH /api/v1/accounts/update_credentials: the gateway passes them on,
# the graph service writes them), and Mastodon's limits on a local account's.
PROFILE_FIELDS = ("display_name", "note", "bot", "locked", "fields", "avatar", "header")
MAX_DISPLAY_NAME, MAX_NOTE = 30, 500
# What an applicant may write for staff with a sign-up held for approval (Mastodon's invite request's limit).
MAX_SIGN_UP_REASON = 420
# Profile fields (Mastodon's "metadata"): at most four name and value pairs, each side at most 255 characters.
MAX_PROFILE_FIELDS, MAX_PROFILE_FIELD_CHARS = 4, 255
_DECODE_FIELDS = msgspec.json.Decoder(list[tuple[str, str]])


def profile_fields(column: str | None) -> list[tuple[str, str]]:
    """The ``accounts.fields`` column's pairs, in order."""
    return _DECODE_FIELDS.decode(column) if column else []


def stored_profile_fields(pairs: Sequence[tuple[str, str]]) -> str:
    return msgspec.json.encode(list(pairs)).decode()


def _field_value_html(value: str) -> str:
    """A field's value as Mastodon shows it: escaped, and a web address alone made a link."""
    if _WEB_ADDRESS.fullmatch(value):
        shown = html.escape(value.split("://", 1)[1])
        return (f'<a href="{html.escape(value)}" target="_blank" rel="nofollow noopener me" translate="no">'
                f"{shown}</a>")
    return html.escape(value)


_WEB_ADDRESS = re.compile(r"https?://[^\s<>\"]+")


def iso_time(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC to the millisecond, as Mastodon writes times (a naive datetime is taken as UTC).

    Formatted field by field: strftime's ``%Y`` leaves years before 1000 unpadded on glibc ("5-01-02T..."),
    which is not ISO 8601, and it was the slower of the two."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    elif moment.utcoffset():
        moment = moment.astimezone(UTC)
    return (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:{moment.minute:02d}:"
            f"{moment.second:02d}.{moment.microsecond // 1000:03d}Z")


def _inline_html(text: str) -> str:
    return html.escape(text, quote=True).replace("\n", "<br />")


def _paragraph_html(paragraph: str, mentions: Mapping[str, Mention], public_url: str,
                    domains: frozenset[str]) -> str:
    links: list[tuple[int, int, str]] = []  # (start, end, the link's HTML), in the order they appear
    if mentions and "@" in paragraph:
        for match in MENTION.finditer(paragraph):
            mention = mentions.get(local_username(match, domains) or "")
            if mention is not None:
                links.append((match.start(), match.end(), link_html(mention, public_url)))
    if public_url and hashtags.may_carry(paragraph):
        links += ((match.start(), match.end(), hashtags.link_html(match.group(1), public_url))
                  for match in hashtags.found(paragraph))
    links += ((start, end, web_link_html(address)) for start, end, address in web_addresses(paragraph))
    links.sort()
    if not links:
        return _inline_html(paragraph)
    parts: list[str] = []
    done = 0
    for start, end, link in links:
        if start >= done:  # a hashtag never lies inside a mention, nor one inside it; kept safe all the same
            parts += (_inline_html(paragraph[done:start]), link)
            done = end
    parts.append(_inline_html(paragraph[done:]))
    return "".join(parts)


def text_to_html(text: str, mentions: Sequence[Mention] = (), public_url: str = "") -> str:
    """Plain text as Mastodon's HTML: paragraphs, line breaks, each resolved mention linked to its account
    (``mentions``: the accounts the text names, ``kicau.mentions.MentionResolver``) and, given the server's
    ``public_url``, each hashtag to its page (kicau/hashtags.py). No text (a status of attachments alone) is no
    HTML, as Mastodon's."""
    if not text:
        return ""
    by_name = {m.username.lower(): m for m in mentions}
    domains = local_domains(public_url) if by_name else frozenset()
    paragraphs = text.replace("\r\n", "\n").split("\n\n")
    return "".join("<p>" + _paragraph_html(p, by_name, public_url, domains) + "</p>" for p in paragraphs)


def account_entity(
    row: dict[str, Any],
    *,
    public_url: str,
    statuses_count: int = 0,
    followers_count: int = 0,
    following_count: int = 0,
    last_status_at: datetime | None = None,
    roles: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Mastodon's Account. A suspended account's (``suspended_at``, set by staff) shows no profile, as Mastodon
    shows it: no display name, note, fields, role or pictures, neither locked nor a bot nor discoverable, and
    ``"suspended":true`` as its last key (``SUSPENDED_CARD_END``: readers tell such a card by its end alone). A
    limited (silenced) account's has ``"limited":true`` (``silenced_at``), last but for ``suspended``. One staff
    marked sensitive (``sensitized_at``) has ``"sensitized":true`` just before those: a key of Kicau's (Mastodon
    shows it to staff alone), by which every reader shows its statuses sensitive without another read
    (``is_sensitized_card``, ``shown_sensitive``)."""
    username = row["username"]
    url = f"{public_url}/@{username}"
    suspended = row.get("suspended_at") is not None
    shown = {} if suspended else row
    # A profile picture's file (kicau/media.py), else Mastodon's default picture (the gateway serves both).
    avatar = public_url + (shown.get("avatar") or "/avatars/original/missing.png")
    header = public_url + (shown.get("header") or "/headers/original/missing.png")
    entity = {
        "id": str(row["id"]),
        "username": username,
        "acct": username,
        "display_name": shown.get("display_name") or "",
        "locked": bool(shown.get("locked")),
        "bot": bool(shown.get("bot")),
        "group": False,
        "discoverable": not suspended,
        "indexable": False,
        "hide_collections": False,
        "noindex": False,
        "created_at": iso_time(row.get("created_at")),
        "note": text_to_html(shown["note"]) if shown.get("note") else "",
        "url": url,
        "uri": f"{public_url}/users/{username}",
        "avatar": avatar,
        "avatar_static": avatar,
        "header": header,
        "header_static": header,
        "followers_count": max(0, followers_count),
        "following_count": max(0, following_count),
        "statuses_count": max(0, statuses_count),
        "last_status_at": last_status_at.strftime("%Y-%m-%d") if last_status_at else None,
        "emojis": [],
        "fields": [{"name": html.escape(name), "value": _field_value_html(value), "verified_at": None}
                   for name, value in profile_fields(shown.get("fields"))],
        # The staff role the profile shows (kicau/staff.py), as Mastodon's highlighted roles.
        "roles": [] if suspended else roles or [],
    }
    if row.get("sensitized_at") is not None and not suspended:
        entity["sensitized"] = True
    if row.get("silenced_at") is not None:
        entity["limited"] = True
    if suspended:
        entity["suspended"] = True
    return entity


# How a suspended account's card ends, and a limited (silenced) one's that is not suspended (``account_entity``;
# msgspec keeps a dict's order). No other card can end so: a string's quotes are escaped, and every other key comes
# before ``limited`` and ``suspended``.
SUSPENDED_CARD_END = b',"suspended":true}'
LIMITED_CARD_END = b',"limited":true}'
SENSITIZED_CARD_ENDS = (b',"sensitized":true}', b',"sensitized":true,"limited":true}')


def is_suspended_card(card: bytes) -> bool:
    """Whether a cached card (``account_entity``'s JSON) is a suspended account's: a test of its last bytes, cheap
    enough for every status of every page."""
    return card.endswith(SUSPENDED_CARD_END)


def is_limited_card(card: bytes) -> bool:
    """Whether a cached card is a limited (silenced) account's that is not suspended (a suspended one's statuses are
    left out everywhere already): a test of its last bytes, as ``is_suspended_card``."""
    return card.endswith(LIMITED_CARD_END)


def is_sensitized_card(card: bytes) -> bool:
    """Whether a cached card is that of an account staff marked sensitive (and did not suspend): a test of its last
    bytes, as ``is_suspended_card``."""
    return card.endswith(SENSITIZED_CARD_ENDS)


def shown_sensitive(fragment: bytes) -> bytes:
    """A Status fragment (``status_fragment``'s, or one a reader is shown) with ``sensitive`` true, as everyone but
    its author is shown the statuses of an account staff marked sensitive (Mastodon's ``account.sensitized? ||
    sensitive``). The first ``"sensitive":`` of a fragment is its own: a string's quotes are escaped, and a reblogged
    or quoted status comes after it."""
    return fragment.replace(b'"sensitive":false', b'"sensitive":true', 1)


def credential_account_entity(account: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """verify_credentials adds the ``source`` block with the raw, unrendered profile."""
    return {
        **account,
        "source": {
            **posting_defaults.source(posting_defaults.of_row(row)),
            "note": row.get("note") or "",
            "fields": [{"name": name, "value": value, "verified_at": None}
                       for name, value in profile_fields(row.get("fields"))],
            "follow_requests_count": 0,
        },
    }


def status_fragment(row: dict[str, Any], *, username: str, public_url: str) -> bytes:
    """The Status entity without ``account``, as JSON bytes. Never contains ``scheduled_at`` (toot reads its
    presence as "this post was scheduled"). A reblog's has no content and ``"reblog":null``, where readers splice
    the reblogged status in (kicau/status_cards.py)."""
    status_id = str(row["id"])
    in_reply_to = row.get("in_reply_to_id")
    reblog = bool(row.get("reblog_of_id"))
    body: dict[str, Any] = {
        "id": status_id,
        # As Mastodon's: a reblog is an activity, with no page of its own (kicau/reblogs.py).
        "uri": f"{public_url}/users/{username}/statuses/{status_id}{'/activity' if reblog else ''}",
        "url": None if reblog else f"{public_url}/@{username}/{status_id}",
        "created_at": iso_time(row["created_at"]),
        "content": "" if reblog else row.get("content") or text_to_html(row.get("text") or ""),
        "visibility": row.get("visibility") or "public",
        "sensitive": bool(row.get("sensitive")),
        "spoiler_text": row.get("spoiler_text") or "",
        # As posted (kicau/media.py): a timeline read never looks an attachment up.
        "media_attachments": media.entities(row.get("media"), public_url) if not reblog else [],
        "mentions": [mention_entity(m, public_url) for m in stored(row.get("mentions"))],
        # From the text, never stored apart from it (kicau/hashtags.py); a reblog's are its reblogged status's.
        "tags": _tags(row.get("text") or "", public_url) if not reblog else [],
        "emojis": [],
        "reblogs_count": 0,
        "favourites_count": 0,
        "replies_count": 0,
        "quotes_count": 0,
        "in_reply_to_id": str(in_reply_to) if in_reply_to else None,
        "in_reply_to_account_id": str(row["in_reply_to_account_id"]) if row.get("in_reply_to_account_id") else None,
        "reblog": None,
        # As posted (no votes): every read puts the poll as it is now in its place (kicau/polls.py).
        "poll": polls.entity(int(row["id"]), poll) if (poll := polls.read(row.get("poll"))) and not reblog else None,
        # The first link's preview (services/post/link_previews.py), as stored; none until its page was fetched.
        "card": msgspec.Raw(card.encode()) if (card := row.get("card")) and not reblog else None,
        # Quote posts (kicau/quotes.py): the status it quotes, shallow until a read renders it for its reader; who
        # may quote this one, as a reader neither its author nor anonymous sees it.
        "quote": quotes.shallow(row) if not reblog else None,
        "quote_approval": quotes.approval(quotes.policy_of(row)),
        "language": row.get("language"),
        "edited_at": iso_time(row.get("edited_at")),
        "application": None,
        "favourited": False,
        "reblogged": False,
        "muted": False,
        "bookmarked": False,
        "pinned": False,
        "filtered": [],
    }
    return _encode(body)


def status_edit_fragment(version: dict[str, Any], made_at: datetime | None, *, media_column: str | None = None,
                         public_url: str = "") -> bytes:
    """One StatusEdit of a status's history (services/post/edits.py) without ``account``, as JSON bytes.
    ``media_column``: the attachments the version had (``statuses.media``'s encoding, kicau/media.py)."""
    return _encode({
        "content": version.get("content") or "",
        "spoiler_text": version.get("spoiler_text") or "",
        "sensitive": bool(version.get("sensitive")),
        "created_at": iso_time(made_at),
        "poll": None,
        "media_attachments": media.entities(media_column, public_url),
        "emojis": [],
    })


def _tags(text: str, public_url: str) -> list[dict[str, str]]:
    if not hashtags.may_carry(text):
        return []
    return [hashtags.entity(name, public_url) for name in hashtags.names(text)]


ACCOUNT_OPENING = b'{"account":'


def compose_status(fragment: bytes, account_json: bytes) -> bytes:
    """Splice ``"account": {...}`` into a fragment without decoding either."""
    return ACCOUNT_OPENING + account_json + b"," + fragment[1:]


def compose_status_list(items: list[bytes]) -> bytes:
    return b"[" + b",".join(items) + b"]"


def relationship_entity(target_id: int, *, following: bool, followed_by: bool,
                        hiding: Between | None = None, options: FollowOptions | None = None,
                        annotations: Annotations | None = None, requested: bool = False,
                        requested_by: bool = False) -> dict[str, Any]:
    """A Relationship; ``hiding``: the viewer's block and mute of the target and the target's block of the viewer
    (kicau/blocks_and_mutes.py), none when not given; ``options``: the viewer's follow's (kicau/follow_options.py),
    the defaults when not given; ``annotations``: the viewer's note on the target and its endorsement
    (kicau/account_notes.py), none when not given; ``requested``, ``requested_by``: a follow request waiting either
    way (kicau/follow_requests.py)."""
    hiding = hiding or Between()
    options = options or FollowOptions()
    annotations = annotations or Annotations()
    return {
        "id": str(target_id),
        "following": following,
        "showing_reblogs": following and options.reblogs,
        "notifying": following and options.notify,
        "languages": sorted(options.languages) if following and options.languages else None,
        "followed_by": followed_by,
        "blocking": hiding.blocking,
        "blocked_by": hiding.blocked_by,
        "muting": hiding.muting,
        "muting_notifications": hiding.muting_notifications,
        "requested": requested,
        "requested_by": requested_by,
        "domain_blocking": False,
        "endorsed": annotations.endorsed,
        "note": annotations.note,
    }


def dumps(value: Any) -> bytes:
    return _encode(value)
