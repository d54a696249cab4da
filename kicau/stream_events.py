"""What the fanout publishes to a gateway's channel: one message per status per gateway, naming the
connected recipients, so a gateway never receives events for users it does not hold."""

from __future__ import annotations

from typing import Literal

import msgspec

# Mastodon's streaming event names: a new status, a deleted one (its id), a notification, an edited status, and a
# direct conversation a status joined (kicau/conversations.py: its member's ``direct`` stream alone); and, from a
# gateway to its own streams, an account's filters changed (kicau/filters.py).
StreamKind = Literal["update", "delete", "notification", "status.update", "conversation", "filters_changed",
                     "announcement", "announcement.reaction", "announcement.delete", "notifications_merged"]


class StreamDelivery(msgspec.Struct, frozen=True, omit_defaults=True):
    event: StreamKind
    # The status's id; a notification's own id for a "notification" (kicau/notifications.py).
    status_id: int
    # Milliseconds since the epoch when the post service accepted the status (delivery latency origin).
    accepted_at: float
    # Full Status JSON for "update" and "status.update", Notification JSON for "notification", the member's
    # Conversation JSON for "conversation" (one delivery a member: each reads it its own way); for "delete" the id
    # alone (digits, not JSON-quoted), as Mastodon's streaming server sends it (until 2026-12-01 Kicau sent it
    # quoted: `data: "123"`, where Mastodon sends `data: 123`).
    payload: str
    recipients: list[int]
    # Authors whose followers are merged at read time: the gateway delivers to its own connections that
    # follow them (see the large-account path), so the fanout need not list them. A public delivery's author
    # too, whose blockers and muters (and those it blocks) do not get it on their public and hashtag streams.
    author_id: int = 0
    followers_of_author: bool = False
    # Of those followers, who must not receive it: they block or mute the author (or a reblog's author).
    hidden_from: list[int] = msgspec.field(default_factory=list)
    # For the gateway's public-timeline streams (``recipients`` is then ``[PUBLIC_LISTENERS]``,
    # kicau/presence.py), not for any account's own; and the status's hashtags, for its hashtag streams.
    public: bool = False
    tags: tuple[str, ...] = ()
    # For the streams of this list's timeline (kicau/lists.py) alone, of its owner (``recipients``).
    list_id: int = 0
    # A "status.update"'s version (services/post/edits.py): each edit of a status is its own event, not a replay.
    version_id: int = 0


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(StreamDelivery).decode


def encode_delivery(delivery: StreamDelivery) -> bytes:
    return _encode(delivery)


def decode_delivery(raw: bytes) -> StreamDelivery:
    return _decode(raw)
