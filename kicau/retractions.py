"""The log of deletions and edits, so that a stream that was away is told of those it missed.

A status's deletion or edit reaches open streams once, as it happens (the fanout's ``delete`` and
``status.update`` deliveries). A stream that was not open then (its client reconnecting with Last-Event-ID),
or whose gateway lost its Redis channel meanwhile, would otherwise keep showing a deleted status or an old
version. Unlike a new status, neither leaves a trace in the home timeline to read back: a deletion takes its
entry out, an edit changes nothing there. The same goes for the public timeline's and its hashtags' streams, which
are told of a public status's deletion and edits (``of_public``; the timeline service's ``public_retracted``).

So the fanout appends each deletion and edit it applies to one Redis stream (``LOG``), before any of the
batch's deliveries or timeline writes, and trims it by age. A resume's read of the home timeline
(``home_after`` in services/timeline/service.py) reads the entries since the stream's point in the same round
trip and keeps those that concern the reader, as the fanout chose whom to deliver them to: its own statuses,
statuses mentioning it, and statuses of the accounts and hashtags it follows (direct statuses to their author
and mentions alone). Too wide a net costs nothing worse than a ``delete`` for an id the client never showed,
which clients drop, as Mastodon's public streams already send them.

One log for the instance, not one per reader: a deletion then costs one entry whatever the author's audience
(the fanout writes nothing per follower for it beyond its timeline removals), and the log stays small because
deletions and edits are few next to new statuses. Its limit is that a resume reads every entry of its span,
whoever they concern: at most ``READ_AT_MOST`` of them, and a span holding more is reported as not covered, so
the client reloads instead.

The log is covered from its ``SINCE`` marker on: the fanout sets it (if absent) with every append and every
``MARK_SECONDS`` (``keep_marking``), so it tells when the log began to hold everything the fanout applied, and
a Redis that lost its data (a restart without it, a ``FLUSHALL``) does not make an empty log look like "nothing
happened": the spans that begin before the marker is set again are not covered. Readers never set it: only the
fanout knows that it appends every deletion and edit it applies.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from redis.asyncio import Redis

from kicau import resp
from kicau.events import StatusDeleted, StatusEdited
from kicau.resp import command, get
from kicau.visibility import PUBLIC, reaches_followers

log = logging.getLogger(__name__)

LOG = "stream:retractions"
SINCE = "stream:retractions:since"
# The most entries one read takes; a span holding more is not covered (the client reloads its timeline).
READ_AT_MOST = 2000
# How far before a stream's point the read starts: the point is a status id made by the post service's clock,
# the log's entry ids by Redis's, and a deletion fanned out from another partition may trail a newer status by
# a batch. Reading a few seconds early repeats deletions the stream already had, which changes nothing.
CLOCK_SLACK_MS = 5_000
# How often the fanout sets the marker if it is missing: how long after a loss of the log no span is covered.
MARK_SECONDS = 5.0

DELETE: Literal["delete"] = "delete"
UPDATE: Literal["status.update"] = "status.update"


class Retraction(msgspec.Struct, array_like=True, frozen=True):
    """One entry: a status deleted or edited, and what decides who is told of it."""

    kind: Literal["delete", "status.update"]
    status_id: int
    author_id: int
    # Only its author and the accounts it mentions could have it in a stream: a direct status.
    direct: bool
    mentions: list[int]
    tags: list[str]
    # The public timeline's streams and its hashtags' had it: a public status, not a reblog. Last, with a default:
    # entries logged before it was recorded read as not public.
    public: bool = False


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Retraction).decode
_FIELD = b"r"


def of_event(event: StatusDeleted | StatusEdited) -> Retraction:
    """The entry of a deletion or an edit (an edit's hashtags both before and after: it left or joined them)."""
    if isinstance(event, StatusDeleted):
        return Retraction(DELETE, event.status_id, event.account_id, not reaches_followers(event.visibility),
                          list(event.mentions), list(event.tags),
                          public=event.visibility == PUBLIC and not event.reblog_of)
    return Retraction(UPDATE, event.status_id, event.account_id, not reaches_followers(event.visibility),
                      list(event.mentions), sorted({*event.tags, *event.tags_before}),
                      public=event.visibility == PUBLIC)


def append_commands(retractions: Sequence[Retraction], now_ms: int, keep_ms: int) -> list[bytes]:
    """The commands that log ``retractions`` (their replies are not needed), trimming entries older than
    ``keep_ms`` as they go (approximately: Redis trims whole nodes, so it keeps a little more, never less)."""
    oldest = b"%d" % max(0, now_ms - keep_ms)
    packed = [command(b"XADD", LOG.encode(), b"MINID", b"~", oldest, b"*", _FIELD, _encode(r)) for r in retractions]
    packed.append(mark_command(now_ms))
    return packed


def mark_command(now_ms: int) -> bytes:
    """Set the marker to now if it is missing (the log lost): the log holds everything from now on."""
    return command(b"SET", SINCE.encode(), b"%d" % now_ms, b"NX")


async def keep_marking(redis: Redis, every: float = MARK_SECONDS) -> None:
    """The fanout's: set the marker again within ``every`` seconds of a loss, whether or not anything is
    deleted or edited meanwhile (a failure is retried at the next turn)."""
    while True:
        try:
            await resp.round_trip(redis, [mark_command(int(time.time() * 1000))])
        except Exception:
            log.warning("could not mark the log of edits and deletions", exc_info=True)
        await asyncio.sleep(every)


def read_commands(after_ms: int) -> list[bytes]:
    """The commands of a read of the entries since ``after_ms`` (less the slack), two replies for ``window``:
    the entries and the marker."""
    start = b"%d" % max(0, after_ms - CLOCK_SLACK_MS)
    return [command(b"XRANGE", LOG.encode(), start, b"+", b"COUNT", b"%d" % (READ_AT_MOST + 1)), get(SINCE)]


@dataclass(frozen=True)
class Window:
    """What a read found: the entries, oldest first, and whether they are provably all those of its span."""

    covered: bool
    retractions: list[Retraction]


def window(replies: Sequence[Any], after_ms: int, now_ms: int, keep_ms: int) -> Window:
    """The read's ``Window`` from the replies of ``read_commands``. Covered when the log began before the span
    (a log Redis lost began again when the fanout marked it), the span is within what the log keeps, and the span
    holds no more than a read takes."""
    entries, since = replies
    start = max(0, after_ms - CLOCK_SLACK_MS)
    found = [_decode(_field_of(fields)) for _, fields in entries or ()]
    covered = (since is not None and int(since) <= start and start >= now_ms - keep_ms
               and len(found) <= READ_AT_MOST)
    return Window(covered, found[:READ_AT_MOST])


def _field_of(fields: Sequence[bytes]) -> bytes:
    """The entry's one field's value (the reply lists field, value, ...)."""
    for name, value in zip(fields[::2], fields[1::2], strict=True):
        if name == _FIELD:
            return value
    raise ValueError(f"a retraction entry without its field: {fields!r}")


def deciding_authors(retractions: Sequence[Retraction], reader: int) -> set[int]:
    """The authors whose being followed by ``reader`` decides whether an entry concerns it."""
    return {r.author_id for r in retractions
            if not r.direct and r.author_id != reader and reader not in r.mentions}


def deciding_tags(retractions: Sequence[Retraction], reader: int, followed: Collection[int]) -> set[str]:
    """The hashtags whose being followed by ``reader`` decides whether an entry concerns it (those of the
    entries its followed authors do not already decide)."""
    return {tag for r in retractions
            if not r.direct and r.author_id != reader and reader not in r.mentions and r.author_id not in followed
            for tag in r.tags}


def concerning(retractions: Sequence[Retraction], reader: int, followed: Collection[int],
               tags_followed: Collection[str]) -> list[Retraction]:
    """The entries the reader's user stream would have been sent: of its own statuses, of statuses that mention
    it, and (but direct ones) of statuses by accounts or with hashtags it follows."""
    tags = set(tags_followed)
    return [r for r in retractions
            if r.author_id == reader or reader in r.mentions
            or (not r.direct and (r.author_id in followed or not tags.isdisjoint(r.tags)))]


def of_public(retractions: Sequence[Retraction], tag: str | None = None) -> list[Retraction]:
    """The entries the public timeline's streams would have been sent (a public status's, not a reblog's), or with
    ``tag`` (in normal form), that hashtag's streams: of a status that carried it (before or after an edit)."""
    return [r for r in retractions if r.public and (tag is None or tag in r.tags)]


@dataclass(frozen=True)
class Retracted:
    """What a stream is told of, once each: the statuses edited (to be rendered as they are now) and those
    deleted, each in the order of its last entry. A status both edited and deleted is only deleted."""

    edited: list[int]
    deleted: list[int]


def collapse(retractions: Sequence[Retraction]) -> Retracted:
    deleted = list(dict.fromkeys(r.status_id for r in retractions if r.kind == DELETE))
    gone = set(deleted)
    edited = list(dict.fromkeys(r.status_id for r in retractions if r.kind == UPDATE and r.status_id not in gone))
    return Retracted(edited, deleted)
