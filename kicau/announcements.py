"""Announcements: what the server's operator tells every account (``GET /api/v1/announcements``), which each account
dismisses (its ``read``) and reacts to with emoji, as Mastodon's.

The operator writes them (``python -m services.graph.announce add "text" [--starts-at] [--ends-at] [--all-day]``,
``list``, ``remove ID``); the graph service reads them, records dismissals and reactions. Cassandra keeps them all
(migration 0036): the announcements in one partition (an operator's few), who dismissed which, who reacted with
what (a row each, so a repeated reaction is one). An announcement is shown from ``starts_at`` (or at once) until
``ends_at`` (or for ever); a reaction is one emoji (Kicau has no custom ones), at most ``MAX_REACTIONS`` different
ones an announcement, as Mastodon allows.

Every change is told to the user streams as Mastodon's are (``ANNOUNCEMENTS_CHANNEL``, which every gateway
listens to): ``announcement`` (the Announcement, as no one in particular reads it) when the tool adds one,
``announcement.delete`` (its id) when it takes one down, ``announcement.reaction`` (``name``, ``count``,
``announcement_id``) when an account reacts or takes its reaction back. A stream closed at that moment learns of it
when its client next asks; a gateway whose channel lost changes reads what is shown again once it is back, and tells
its streams the difference (``missed``).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
from cassandra.cluster import Session
from redis.asyncio import Redis

from kicau import keys
from kicau.clients import execute, write_preparer
from kicau.entities import iso_time, text_to_html
from kicau.stream_events import StreamKind

_SHARD: Final = 0
MAX_REACTIONS: Final = 8  # different emoji an announcement (Mastodon's limit)
MAX_TEXT: Final = 10_000
# What an emoji is made of besides its symbols: joiners, variation selectors, skin tones, keycaps, tags.
_JOINING: Final = frozenset({"\u200d", "\ufe0f", "\ufe0e", "\u20e3"})


@dataclass(frozen=True, slots=True)
class Announcement:
    id: int
    text: str
    starts_at: datetime | None
    ends_at: datetime | None
    all_day: bool
    published_at: datetime
    updated_at: datetime

    def shown(self, now: datetime) -> bool:
        return (self.starts_at is None or self.starts_at <= now) and (self.ends_at is None or now <= self.ends_at)


def is_emoji(name: str) -> bool:
    """Whether ``name`` is one emoji as a client sends it: symbols (``So``), with the marks that join, vary and
    tone them, regional indicators (flags), keycaps; no other letters, digits or spaces."""
    if not name or len(name) > 16:
        return False
    if name[0] in "0123456789#*" and name[1:] in ("\u20e3", "\ufe0f\u20e3"):
        return True  # a keycap: a digit, # or *, boxed
    symbols = 0
    for char in name:
        point = ord(char)
        if unicodedata.category(char) == "So" or 0x1F1E6 <= point <= 0x1F1FF:
            symbols += 1
        elif not (char in _JOINING or 0x1F3FB <= point <= 0x1F3FF or 0xE0020 <= point <= 0xE007F):
            return False
    return symbols > 0


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def entity(announcement: Announcement, *, read: bool, reactions: dict[str, tuple[int, bool]],
           public_url: str) -> dict[str, Any]:
    """Mastodon's Announcement, for one account (``reactions``: emoji -> (how many reacted, whether it did))."""
    return {
        "id": str(announcement.id),
        "content": text_to_html(announcement.text, public_url=public_url),
        "starts_at": iso_time(announcement.starts_at),
        "ends_at": iso_time(announcement.ends_at),
        "all_day": announcement.all_day,
        "published_at": iso_time(announcement.published_at),
        "updated_at": iso_time(announcement.updated_at),
        "read": read,
        "mentions": [],
        "statuses": [],
        "tags": [],
        "emojis": [],
        "reactions": [{"name": name, "count": count, "me": me} for name, (count, me) in reactions.items()],
    }


class AnnouncementStore:
    """The three tables (module doc)."""

    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        write = write_preparer(session, write_consistency)
        prepare = session.prepare
        self._add = write("INSERT INTO announcements (shard, id, text, starts_at, ends_at, all_day, published_at,"
                          " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
        self._remove = write("DELETE FROM announcements WHERE shard = ? AND id = ?")
        self._all = prepare("SELECT * FROM announcements WHERE shard = ?")
        self._one = prepare("SELECT * FROM announcements WHERE shard = ? AND id = ?")
        self._dismiss = write("INSERT INTO announcement_reads (account_id, announcement_id) VALUES (?, ?)")
        self._read = prepare("SELECT announcement_id FROM announcement_reads WHERE account_id = ?"
                             " AND announcement_id IN ?")
        self._react = write("INSERT INTO announcement_reactions (announcement_id, name, account_id) VALUES (?, ?, ?)")
        self._unreact = write("DELETE FROM announcement_reactions WHERE announcement_id = ? AND name = ?"
                              " AND account_id = ?")
        self._reactions = prepare("SELECT announcement_id, name, account_id FROM announcement_reactions"
                                  " WHERE announcement_id IN ?")

    async def add(self, announcement: Announcement) -> None:
        a = announcement
        await execute(self._session, self._add, (_SHARD, a.id, a.text, a.starts_at, a.ends_at, a.all_day,
                                                 a.published_at, a.updated_at))

    async def remove(self, announcement_id: int) -> None:
        await execute(self._session, self._remove, (_SHARD, announcement_id))

    async def every(self) -> list[Announcement]:
        """Every announcement, newest first."""
        return [_announcement(row) for row in await execute(self._session, self._all, (_SHARD,))]

    async def one(self, announcement_id: int) -> Announcement | None:
        rows = await execute(self._session, self._one, (_SHARD, announcement_id))
        return _announcement(rows[0]) if rows else None

    async def dismiss(self, account_id: int, announcement_id: int) -> None:
        await execute(self._session, self._dismiss, (account_id, announcement_id))

    async def read_by(self, account_id: int, announcement_ids: Collection[int]) -> set[int]:
        if not announcement_ids:
            return set()
        rows = await execute(self._session, self._read, (account_id, sorted(announcement_ids)))
        return {int(row["announcement_id"]) for row in rows}

    async def react(self, announcement_id: int, name: str, account_id: int) -> None:
        await execute(self._session, self._react, (announcement_id, name, account_id))

    async def unreact(self, announcement_id: int, name: str, account_id: int) -> None:
        await execute(self._session, self._unreact, (announcement_id, name, account_id))

    async def reactions(self, announcement_ids: Collection[int],
                        account_id: int) -> dict[int, dict[str, tuple[int, bool]]]:
        """Each announcement's reactions, emoji -> (how many, whether ``account_id`` is among them)."""
        found: dict[int, dict[str, tuple[int, bool]]] = {a: {} for a in announcement_ids}
        if not announcement_ids:
            return found
        for row in await execute(self._session, self._reactions, (sorted(announcement_ids),)):
            kinds = found[int(row["announcement_id"])]
            count, me = kinds.get(row["name"], (0, False))
            kinds[row["name"]] = (count + 1, me or int(row["account_id"]) == account_id)
        return found


class Change(msgspec.Struct, frozen=True):
    """One change told to the user streams (module doc): the stream event and its data."""

    event: StreamKind
    payload: str


_encode_change = msgspec.json.Encoder().encode
_decode_change = msgspec.json.Decoder(Change).decode


def decode_change(raw: bytes) -> Change:
    try:
        change = _decode_change(raw)
    except msgspec.DecodeError as exc:  # a ValidationError is one too
        raise ValueError(str(exc)) from exc
    if not change.event.startswith("announcement"):
        raise ValueError(f"not an announcement's event: {change.event}")
    return change


# An id no account has: announcements read "as no one in particular" (none dismissed, no reaction its own), as the
# streams are told of them.
NO_ONE: Final = 0


class Told(msgspec.Struct, frozen=True):
    """What the user streams were last told of one announcement: when it was last edited, and each reaction's
    count."""

    updated_at: str
    reactions: dict[str, int]


class _Reaction(msgspec.Struct):
    name: str
    count: int


class _Shown(msgspec.Struct):
    id: str
    updated_at: str
    reactions: list[_Reaction] = []


class _ReactionChange(msgspec.Struct):
    name: str
    count: int
    announcement_id: str


_read_shown = msgspec.json.Decoder(_Shown).decode
_read_reaction = msgspec.json.Decoder(_ReactionChange).decode


def told_of(shown: list[bytes]) -> dict[int, Told]:
    """What a stream knows once told of each of ``shown`` (Announcement JSON), by id."""
    found: dict[int, Told] = {}
    for raw in shown:
        each = _read_shown(raw)
        found[int(each.id)] = Told(each.updated_at, {r.name: r.count for r in each.reactions})
    return found


def apply(told: dict[int, Told], change: Change) -> None:
    """Bring ``told`` up to date with a change the streams were just told of."""
    try:
        if change.event == "announcement":
            told.update(told_of([change.payload.encode()]))
        elif change.event == "announcement.delete":
            told.pop(int(change.payload), None)
        elif change.event == "announcement.reaction":
            reaction = _read_reaction(change.payload)
            known = told.get(int(reaction.announcement_id))
            if known is not None:
                told[int(reaction.announcement_id)] = Told(known.updated_at,
                                                           {**known.reactions, reaction.name: reaction.count})
    except (msgspec.DecodeError, ValueError):
        pass  # a change the streams could not have read either: nothing learnt


def missed(told: dict[int, Told], shown: list[bytes]) -> list[Change]:
    """The changes that turn what the streams were told (``told``) into what is shown now (``shown``, Announcement
    JSON as no one in particular reads it), as the events that would have told them live: each announcement taken
    down or no longer shown (``announcement.delete``), each new or edited one (``announcement``, the whole of it,
    its reactions with it), and on the others each reaction whose count moved (``announcement.reaction``, 0 for one
    taken back by all)."""
    now = told_of(shown)
    changes = [Change("announcement.delete", str(gone)) for gone in sorted(told.keys() - now.keys())]
    for raw in shown:
        announcement_id = int(_read_shown(raw).id)
        before, after = told.get(announcement_id), now[announcement_id]
        if before is None or before.updated_at != after.updated_at:
            changes.append(Change("announcement", raw.decode()))
            continue
        for name in sorted(before.reactions.keys() | after.reactions.keys()):
            count = after.reactions.get(name, 0)
            if before.reactions.get(name, 0) != count:
                changes.append(Change("announcement.reaction", msgspec.json.encode(
                    {"name": name, "count": count, "announcement_id": str(announcement_id)}).decode()))
    return changes


async def tell(redis: Redis, event: StreamKind, payload: Any) -> None:
    """Tell every user stream (every gateway) of a change; ``payload``: JSON-able, or a string as it is (an id)."""
    data = payload if isinstance(payload, str) else msgspec.json.encode(payload).decode()
    await redis.publish(keys.ANNOUNCEMENTS_CHANNEL, _encode_change(Change(event, data)))


def _announcement(row: dict[str, Any]) -> Announcement:
    return Announcement(int(row["id"]), row["text"] or "", _utc(row.get("starts_at")), _utc(row.get("ends_at")),
                        bool(row.get("all_day")), _utc(row["published_at"]) or datetime.now(UTC),
                        _utc(row.get("updated_at") or row["published_at"]) or datetime.now(UTC))
