"""Rendered statuses for reads: the Redis status cache, with Cassandra behind it.

A cached value is the author's id (8 bytes, big-endian), who may see the status (one byte,
``kicau.visibility.audience``), its counts (moved in place by the post service) and the id of the status it
reblogs, if it is a reblog (kicau/status_tallies.py), followed by the Status fragment JSON; an empty value is a
tombstone for a deleted status. The fragment never changes: the counts, and whether the reader favourites,
reblogs or bookmarks the status, are spliced in when it is rendered, the latter from the reader's set of marks
(kicau/reader_marks.py).

A reblog's fragment is its own (the booster's account, no content) with ``"reblog":null``: the reblogged status
is rendered for the reader beside the page's other statuses, with its own counts and flags, and spliced in there
(kicau/reblogs.py). A reblog of a status deleted since, or that the reader may not see, is left out.

Hydrating a page is one pipelined round trip for the statuses and the cards of their authors when this process
has seen those statuses before (a status's author never changes), else one more for the cards; only misses go to
Cassandra, concurrently. With a ``TrackedCache``, the statuses and cards
this process already holds (kept true by Redis's invalidations, kicau/tracked_cache.py) are not read at all.

Every read says who reads (``kicau.visibility.Reader``), and a status that reader may not see is left out as a
deleted one is; a followers-only status of an author the reader may follow costs one Cassandra read of the
reader's follows for all such authors of the page (none if the status mentions the reader).
"""

from __future__ import annotations

import asyncio
import re
import struct
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Final, NamedTuple

import msgspec
from cassandra.cluster import Session
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from kicau import keys, polls, quotes, resp, visibility
from kicau.account_cards import AccountCards
from kicau.blocks_and_mutes import NO_HIDES, HideCopies, Hides
from kicau.clients import execute
from kicau.entities import (
    ACCOUNT_OPENING,
    compose_status,
    is_limited_card,
    is_sensitized_card,
    is_suspended_card,
    shown_sensitive,
    status_fragment,
)
from kicau.favourites import COUNT_QUERY
from kicau.filters import HOME, PUBLIC, THREAD, ContextFilters, FilterCopies, SearchableTexts, with_results
from kicau.ids import ms_from_id
from kicau.mentions import mentioned_in
from kicau.quotes import COUNT_QUERY as COUNT_QUOTES_QUERY
from kicau.reader_marks import NOTHING, Marked, ReaderMarks
from kicau.reblogs import COUNT_QUERY as COUNT_REBLOGS_QUERY
from kicau.reblogs import with_reblog
from kicau.replies import COUNT_QUERY as COUNT_REPLIES_QUERY
from kicau.resp import command
from kicau.status_tallies import (
    COUNTS,
    COUNTS_AT,
    FLAGS_AT,
    HAS_POLL,
    HAS_QUOTE,
    HEAD,
    PLAIN,
    QUOTED_BY_ANYONE,
    QUOTED_BY_FOLLOWERS,
    REBLOG_OF_AT,
    ROOT_AT,
)
from kicau.tracked_cache import TrackedCache
from kicau.visibility import Reader

STATUS_CACHE_SECONDS = 24 * 3600
TOMBSTONE = b""
_FRAGMENT_AT = HEAD.size
MAX_REMEMBERED_AUTHORS = 200_000  # status id -> author id pairs kept in process (about 20 MB at most)
# A status's row and its place in the author's list are written in one unlogged batch (services/post/store.py), so
# for a moment a reader may find the entry in the list and no row yet; a crash of Cassandra in between may leave
# it so. A status this young that has no row is left out of the answer but not cached as a tombstone, so it shows
# as soon as its row lands; an older one is a tombstone, as a deleted status. A minute is far more than a write
# can take (Cassandra gives up on one after 2 s, the driver's request after 10 s).
UNWRITTEN_GRACE_SECONDS = 60.0
_UNWRITTEN = "unwritten"
Hydrated = tuple[int, bytes, bytes]  # a status's id, its cached value and its author's card
_AUTHOR_AUDIENCE = struct.Struct(">QB")  # the head's first two
# Where the statuses of accounts the reader blocks or mutes are left out (kicau/blocks_and_mutes.py, ``Hides``):
# its home and list timelines, the public and hashtag ones, threads.
HIDING_CONTEXTS: Final = frozenset({HOME, PUBLIC, THREAD})
# The author, the audience and the reblogged status, past the counts: what hydrating a page reads of each head.
_NONE: frozenset[int] = frozenset()
_HYDRATED_HEAD = struct.Struct(f">QB{REBLOG_OF_AT - _AUTHOR_AUDIENCE.size}xQ")
_ROOT = struct.Struct(">Q")


_FAVOURITES_ZERO = b'"favourites_count":0'
_REPLIES_ZERO = b'"replies_count":0'
_REBLOGS_ZERO = b'"reblogs_count":0'
_QUOTES_ZERO = b'"quotes_count":0'
_NOT_FAVOURITED = b'"favourited":false'
_NOT_REBLOGGED = b'"reblogged":false'
_NOT_BOOKMARKED = b'"bookmarked":false'
_NOT_PINNED = b'"pinned":false'
_NOT_MUTED = b'"muted":false'


class Loaded(NamedTuple):
    """A status read from Cassandra, as it is cached."""

    account_id: int
    fragment: bytes
    favourites: int = 0
    replies: int = 0
    reblogs: int = 0
    reblog_of: int = 0  # the status it reblogs, if it is a reblog
    root: int = 0  # the root of its thread (kicau/conversations.py), 0 for the status itself
    quotes: int = 0


def cache_value(account_id: int, fragment: bytes, favourites: int = 0, replies: int = 0, reblogs: int = 0,
                reblog_of: int = 0, root: int = 0, quoted: int = 0) -> bytes:
    """The cached value of a status (kicau/status_tallies.py); ``quoted``: its quotes_count."""
    flags = HAS_POLL if polls.poll_in(fragment) is not None else 0
    if quotes.quoted_in(fragment) is not None:
        flags |= HAS_QUOTE
    if quotes.QUOTABLE_BY_ANYONE in fragment:
        flags |= QUOTED_BY_ANYONE
    elif quotes.QUOTABLE_BY_FOLLOWERS in fragment:
        flags |= QUOTED_BY_FOLLOWERS
    return HEAD.pack(account_id, visibility.audience(visibility.of_fragment(fragment)), favourites, replies,
                     reblogs, quoted, reblog_of, root, flags) + fragment


def thread_of(status_id: int, value: bytes) -> int:
    """The root of the thread of a status, from its cached value."""
    return _ROOT.unpack_from(value, ROOT_AT)[0] or status_id


# KEYS[1] = a status's cached value, KEYS[2] = its edited mark; ARGV = the value as read from Cassandra, its
# lifetime, and the mark as it was before that read ('' for none). Caches the value only where nothing is cached
# (a tombstone must win over a late load, and counts already moved by a favourite, a reply or a reblog stay) and
# only if no edit came since the mark was read: an edit writes the row, moves the mark, then drops the value, so a
# load that read the row before the edit and caches after the drop would keep the version before for a day.
CACHE_READ: Final = """
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[3] then return false end
return redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2], 'NX')
"""


def shown_fragment(value: bytes, favourited: bool = False, bookmarked: bool = False, reblogged: bool = False,
                   reblog: bytes | None = None, pinned: bool = False, muted: bool = False) -> bytes | memoryview:
    """The Status fragment of a cached value with its counts, the reader's ``favourited``, ``bookmarked``,
    ``reblogged``, ``pinned`` (only an author pins, its own) and ``muted`` (its thread), and for a reblog the
    reblogged status
    (``reblog``, full Status JSON) spliced in: the cached bytes themselves (no copy) for the usual status, which no
    one favourites, answers or reblogs. None of the keys can occur earlier in the fragment, as a string's own
    quotes are escaped; the reblogged status goes in last, since its own keys would come before the reblog's
    flags."""
    favourites, replies, reblogs, quoted = COUNTS.unpack_from(value, COUNTS_AT)
    fragment = memoryview(value)[_FRAGMENT_AT:]
    if not (favourites or replies or reblogs or quoted or favourited or bookmarked or reblogged or pinned or muted
            or reblog is not None):
        return fragment
    patched = bytes(fragment)
    if quoted:
        patched = patched.replace(_QUOTES_ZERO, b'"quotes_count":%d' % quoted, 1)
    if reblogs:
        patched = patched.replace(_REBLOGS_ZERO, b'"reblogs_count":%d' % reblogs, 1)
    if favourites:
        patched = patched.replace(_FAVOURITES_ZERO, b'"favourites_count":%d' % favourites, 1)
    if replies:
        patched = patched.replace(_REPLIES_ZERO, b'"replies_count":%d' % replies, 1)
    if favourited:
        patched = patched.replace(_NOT_FAVOURITED, b'"favourited":true', 1)
    if reblogged:
        patched = patched.replace(_NOT_REBLOGGED, b'"reblogged":true', 1)
    if bookmarked:
        patched = patched.replace(_NOT_BOOKMARKED, b'"bookmarked":true', 1)
    if pinned:
        patched = patched.replace(_NOT_PINNED, b'"pinned":true', 1)
    if muted:
        patched = patched.replace(_NOT_MUTED, b'"muted":true', 1)
    if reblog is not None:
        patched = with_reblog(patched, reblog)
    return patched


def _tombstone_args(status_id: int) -> tuple[bytes, ...]:
    return b"SET", keys.status_cache(status_id).encode(), TOMBSTONE, b"EX", b"%d" % STATUS_CACHE_SECONDS


def queue_cache(pipe: Pipeline, status_id: int, loaded: Loaded, mark: bytes | None) -> None:
    """Cache a status loaded from Cassandra (``CACHE_READ``), ``mark`` its edited mark as read before the load."""
    pipe.execute_command(b"EVAL", CACHE_READ, 2, keys.status_cache(status_id), keys.status_edited(status_id),
                         cache_value(*loaded), STATUS_CACHE_SECONDS, mark or b"")


def queue_tombstone(pipe: Pipeline, status_id: int) -> None:
    pipe.execute_command(*_tombstone_args(status_id))


# KEYS[1] = a status's cached value, KEYS[2] = its edited mark (same hash tag); ARGV = the value, its lifetime.
# Caches the value unless one is cached or the status was edited: the fragment a creation event carries is the
# first version, and the event may be applied after an edit dropped the cached value (the fanout behind the edit,
# or replaying after a crash); the next read then caches the edited row from Cassandra.
CACHE_NEW: Final = """
if redis.call('EXISTS', KEYS[2]) == 1 then return false end
return redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2], 'NX')
"""


def cache_command(status_id: int, account_id: int, fragment: bytes, reblog_of: int = 0, root: int = 0) -> bytes:
    """The value of a new status, from its creation (the post service's answer, the fanout's event), as one packed
    command (``kicau.resp``): ``CACHE_NEW``. EVAL of the text, not EVALSHA: nothing to load again after a restart
    of Redis, which compiles the script once. ``root``: its thread's (0: the status is its own)."""
    return command(b"EVAL", CACHE_NEW.encode(), b"2", keys.status_cache(status_id).encode(),
                   keys.status_edited(status_id).encode(),
                   cache_value(account_id, fragment, reblog_of=reblog_of, root=root), b"%d" % STATUS_CACHE_SECONDS)


def edited_command(status_id: int, version_id: int) -> bytes:
    """Mark a status edited, by the edit's version (``CACHE_NEW``, ``CACHE_READ``), for as long as a cached value
    lives; sent after the row is written and before its value is dropped."""
    return command(b"SET", keys.status_edited(status_id).encode(), b"%d" % version_id, b"EX",
                   b"%d" % STATUS_CACHE_SECONDS)


def tombstone_command(status_id: int) -> bytes:
    return command(*_tombstone_args(status_id))


def _counted(rows: list[dict[str, Any]]) -> int:
    return int(rows[0]["n"]) if rows else 0


# A status's language in its cached fragment: the first ``"language":`` whose quotes are not escaped is the
# Status's own (inside a JSON string every quote is escaped), and a fragment holds no other status.
_LANGUAGE = re.compile(rb'"language":(?:"([^"\\]*)"|null)')


class _Parent(msgspec.Struct):
    in_reply_to_id: str | None = None


# The status a cached fragment replies to; the fragment's other members are skipped unparsed.
_read_parent = msgspec.json.Decoder(_Parent).decode


def _language_of(value: bytes) -> str:
    """The language of a cached status ("" for none given)."""
    found = _LANGUAGE.search(value, _FRAGMENT_AT)
    return found.group(1).decode() if found is not None and found.group(1) is not None else ""


class Visible(NamedTuple):
    seen: list[Hydrated]
    marked: Marked
    originals: dict[int, bytes]  # reblog id -> the reblogged status, rendered for the reader
    # status id -> its FilterResults (kicau/filters.py), for the statuses the reader's filters warn of
    filtered: dict[int, bytes] = {}  # a shared default, never changed
    # status id -> its poll as it is now, as the reader sees it (kicau/polls.py), for the statuses with one
    polls: dict[int, bytes] = {}  # a shared default, never changed
    # status id -> the Quote the reader is shown (kicau/quotes.py), for the statuses that quote another
    quotes: dict[int, bytes] = {}  # a shared default, never changed
    # the statuses whose quote_approval.current_user the reader sees otherwise than their fragment says
    approvals: frozenset[int] = frozenset()
    # the statuses the reader is shown sensitive, whatever they were posted with: those of an account staff marked
    # sensitive, to everyone but their author (kicau/entities.py ``shown_sensitive``)
    sensitized: frozenset[int] = frozenset()


def _shown_fragment(status_id: int, value: bytes, visible: Visible) -> bytes | memoryview:
    marked, filtered = visible.marked, visible.filtered
    shown = shown_fragment(value, status_id in marked.favourited, status_id in marked.bookmarked,
                           status_id in marked.reblogged, visible.originals.get(status_id),
                           status_id in marked.pinned, status_id in marked.muted)
    if status_id in visible.quotes:
        shown = quotes.with_quote(bytes(shown), visible.quotes[status_id])
    if status_id in visible.approvals:
        shown = quotes.with_current_user(bytes(shown), not value[FLAGS_AT] & QUOTED_BY_ANYONE)
    if status_id in visible.polls:
        shown = polls.with_poll(shown, visible.polls[status_id])
    if status_id in visible.sensitized:
        shown = shown_sensitive(bytes(shown))
    if filtered and status_id in filtered:
        return with_results(bytes(shown), filtered[status_id])
    return shown


def _sensitized(seen: list[Hydrated], reader: Reader) -> frozenset[int]:
    """The statuses among ``seen`` the reader is shown sensitive (``Visible.sensitized``): a test of each card's
    last bytes, and of the author for the few whose card says so."""
    return frozenset(status_id for status_id, value, card in seen
                     if is_sensitized_card(card) and _AUTHOR_AUDIENCE.unpack_from(value)[0] != reader.account_id)


def _filter(seen: list[Hydrated], active: ContextFilters, reblogged: dict[int, int],
            originals: dict[int, bytes], texts: SearchableTexts) -> tuple[list[Hydrated], dict[int, bytes]]:
    """The statuses the reader's filters leave (those of a ``hide`` filter go), and the FilterResults of those a
    filter warns of. A reblog is matched by the status it reblogs (its text, and its id beside the reblog's)."""
    kept: list[Hydrated] = []
    filtered: dict[int, bytes] = {}
    text_needed = active.needs_text
    for item in seen:
        status_id, value, _ = item
        original = reblogged.get(status_id)
        ids = (status_id,) if original is None else (status_id, original)
        text = None
        if text_needed:
            text = texts.of(original, originals[status_id]) if original is not None and status_id in originals \
                else texts.of(status_id, value, _FRAGMENT_AT)
        hide, results = active.results(ids, text)
        if hide:
            continue
        if results is not None:
            filtered[status_id] = results
        kept.append(item)
    return kept, filtered


class StatusCards:
    def __init__(self, redis: Redis, session: Session, accounts: AccountCards, public_url: str,
                 copies: TrackedCache | None = None, marks: ReaderMarks | None = None,
                 filters: FilterCopies | None = None, hides: HideCopies | None = None,
                 poll_votes: polls.PollVotes | None = None) -> None:
        self._redis = redis
        # Without it (tools), a poll is shown as it was posted.
        self._polls = poll_votes
        # Without it (tools), no reader's blocks and mutes, nor those of it, apply.
        self._hides = hides
        # Without it (the post service's answers, tools), no reader's filters apply.
        self._filters = filters
        self._copies = copies
        # Without it (tools that render no reader's page), the reader's flags (``favourited``...) are false everywhere.
        self._marks = marks
        self._count_favourites = session.prepare(COUNT_QUERY)
        self._count_replies = session.prepare(COUNT_REPLIES_QUERY)
        self._count_reblogs = session.prepare(COUNT_REBLOGS_QUERY)
        self._count_quotes = session.prepare(COUNT_QUOTES_QUERY)
        self._session = session
        self._accounts = accounts
        self._public_url = public_url
        self._select = session.prepare("SELECT * FROM statuses WHERE id = ?")
        self._follows_among = session.prepare(
            "SELECT followee_id FROM following WHERE follower_id = ? AND followee_id IN ?")
        self._authors: dict[int, int] = {}
        self._texts = SearchableTexts()

    async def _hydrate(self, status_ids: Sequence[int], *, suspended_too: bool = False,
                       ) -> tuple[list[Hydrated], bool, dict[int, int]]:
        """(status id, cached value, author's card) of each live status, in the order given (the value: its head,
        kicau/status_tallies.py, then the Status fragment); deleted and unknown statuses, and any whose author has
        no card or (unless ``suspended_too``) is suspended, are left out. And whether any of them is not for
        everyone to see, and the status each reblog among them reblogs (read here, with the rest of the head, as
        this loop is the one every page pays for).

        The author of a status never changes, so this process remembers it: the cards of the authors it knows
        are read in the same round trip as the statuses, and only unknown (or uncached) authors take a second
        one. Misses are loaded from Cassandra, concurrently, and cached (a deleted status as a tombstone; one too
        young to tell is left out uncached, see ``UNWRITTEN_GRACE_SECONDS``)."""
        if not status_ids:
            return [], False, {}
        remembered = self._authors
        known_authors = sorted({a for a in map(remembered.get, status_ids) if a is not None})
        wanted = [*map(keys.status_cache, status_ids), *map(keys.account_cache, known_authors)]
        if self._copies is not None:
            replies = await self._copies.get_many(wanted)
        else:
            replies = await resp.round_trip(self._redis, [resp.get(key) for key in wanted])
        count = len(status_ids)
        cards = {a: raw if isinstance(raw, bytes) else raw.encode()
                 for a, raw in zip(known_authors, replies[count:], strict=True) if raw is not None}
        values: list[bytes | None] = replies[:count]
        missing = [index for index, raw in enumerate(values) if raw is None]
        if missing:
            # The edited marks before the rows (``CACHE_READ``): a load that an edit overtakes caches nothing.
            marks = await resp.round_trip(self._redis, [resp.get(keys.status_edited(status_ids[index]))
                                                        for index in missing])
            loaded = await asyncio.gather(*(self._load(status_ids[index]) for index in missing))
            fill = self._redis.pipeline(transaction=False)
            for index, item, mark in zip(missing, loaded, marks, strict=True):
                if isinstance(item, str):  # _UNWRITTEN
                    values[index] = TOMBSTONE  # left out of this answer only
                elif item is None:
                    queue_tombstone(fill, status_ids[index])
                    values[index] = TOMBSTONE
                else:
                    queue_cache(fill, status_ids[index], item, mark)
                    values[index] = cache_value(*item)
            await fill.execute()
        live: list[tuple[int, int, bytes]] = []
        restricted = visibility.EVERYONE
        reblogs: dict[int, int] = {}
        for status_id, value in zip(status_ids, values, strict=True):
            if not value:
                continue  # a tombstone: the status was deleted
            author, audience, reblogged = _HYDRATED_HEAD.unpack_from(value)
            restricted |= audience
            if reblogged:
                reblogs[status_id] = reblogged
            if remembered.get(status_id) != author:
                self._remember_author(status_id, author)
            live.append((status_id, author, value))
        unread = {author for _, author, _ in live} - cards.keys()
        if unread:
            cards.update(await self._accounts.cards(unread))
        # A suspended author's statuses are left out as deleted ones are, for every reader (kicau/entities.py).
        return ([(status_id, value, card) for status_id, author, value in live
                 if (card := cards.get(author)) is not None and (suspended_too or not is_suspended_card(card))],
                restricted != visibility.EVERYONE, reblogs)

    def _remember_author(self, status_id: int, author: int) -> None:
        if status_id not in self._authors and len(self._authors) >= MAX_REMEMBERED_AUTHORS:
            del self._authors[next(iter(self._authors))]  # the oldest entry (dicts keep insertion order)
        self._authors[status_id] = author

    async def _load(self, status_id: int) -> Loaded | str | None:
        """The status and its counts; None for a deleted or unknown status; ``_UNWRITTEN`` for one whose row may
        still be on its way."""
        rows, favourites, replies, reblogs, quoted = await asyncio.gather(
            execute(self._session, self._select, (status_id,)),
            execute(self._session, self._count_favourites, (status_id,)),
            execute(self._session, self._count_replies, (status_id,)),
            execute(self._session, self._count_reblogs, (status_id,)),
            execute(self._session, self._count_quotes, (status_id,)))
        if not rows:
            young = time.time() * 1000 - ms_from_id(status_id) < UNWRITTEN_GRACE_SECONDS * 1000
            return _UNWRITTEN if young else None
        if rows[0].get("deleted_at") is not None:
            return None
        row: dict[str, Any] = rows[0]
        author, _ = await self._accounts.load_rows(int(row["account_id"]))
        if author is None:
            return None
        fragment = status_fragment(row, username=author["username"], public_url=self._public_url)
        return Loaded(int(row["account_id"]), fragment, _counted(favourites), _counted(replies), _counted(reblogs),
                      int(row.get("reblog_of_id") or 0), int(row.get("conversation_id") or 0), _counted(quoted))

    async def hides_of(self, account_id: int) -> Hides:
        """What the account's reads leave out (kicau/blocks_and_mutes.py); nothing without the copies."""
        return await self._hides.of(account_id) if self._hides is not None else NO_HIDES

    async def account_card(self, account_id: int) -> bytes | None:
        """The account's cached card (from this process's copy when it holds one), or None if there is no such
        account (asked of Cassandra on a miss, and cached)."""
        key = keys.account_cache(account_id)
        if self._copies is not None:
            (raw,) = await self._copies.get_many([key])
        else:
            (raw,) = await resp.round_trip(self._redis, [resp.get(key)])
        if raw is not None:
            return raw if isinstance(raw, bytes) else raw.encode()
        return await self._accounts.card(account_id)

    async def _seen_by(self, hydrated: list[Hydrated], reader: Reader) -> list[Hydrated]:
        """The hydrated statuses the reader may see (``kicau.visibility``), in order."""
        heads = [_AUTHOR_AUDIENCE.unpack_from(value) for _, value, _ in hydrated]
        mentioned = [visibility.needs_mentions(audience, author, reader)
                     and reader.account_id in mentioned_in(memoryview(value)[_FRAGMENT_AT:])
                     for (_, value, _), (author, audience) in zip(hydrated, heads, strict=True)]
        ask = {author for (author, audience), named in zip(heads, mentioned, strict=True)
               if not named and visibility.needs_follow_check(audience, author, reader)}
        followed: set[int] = set()
        if ask and reader.account_id is not None:
            rows = await execute(self._session, self._follows_among, (reader.account_id, sorted(ask)))
            followed = {int(row["followee_id"]) for row in rows}
        return [item for item, (author, audience), named in zip(hydrated, heads, mentioned, strict=True)
                if visibility.may_see(audience, author, reader, author in followed, named)]

    async def _visible(self, status_ids: Sequence[int], reader: Reader, marks: bool = True,
                       reblogs: bool = True, reblogged: bool = False, quoted: bool = True) -> Visible:
        """Each status the reader may see, in order; which of them it marked (``marks``: or none); and, for each
        reblog among them, the reblogged status rendered for the reader (a reblog whose status the reader may not
        see, or that was deleted, is left out; so is every reblog without ``reblogs``, for what a reblog never
        reblogs). Statuses by accounts that block the reader are left out; so are, where the reader's context
        says so, those by accounts it blocks or mutes, and, everywhere, others' reblogs of them (``Hides``); and
        statuses the reader's follows' options do not admit (``Reader.followed_options``). Statuses shown inside
        reblogs (``reblogged``) are left out by the first rule alone: the reblogs decide the rest (``_originals``).
        With ``quoted``, each status that quotes another gets the Quote the reader is shown (``_quotes``)."""
        hydrated, restricted, reblogs_of = await self._hydrate(status_ids, suspended_too=reader.moderating)
        if reader.context == PUBLIC and hydrated:
            # A limited (silenced) account's statuses are left out of the public reads (public, hashtag and link
            # timelines, trends), as Mastodon's public feeds leave them out; its followers read them elsewhere.
            hydrated = [item for item in hydrated if not is_limited_card(item[2])]
        hides = NO_HIDES
        if hydrated and reader.account_id is not None and self._hides is not None:
            hides = await self._hides.of(reader.account_id)
            if hides:  # rare: most readers hide no one and are blocked by no one
                hidden_too = not reblogged and reader.context in HIDING_CONTEXTS
                hydrated = [item for item in hydrated
                            if not hides.hides(_AUTHOR_AUDIENCE.unpack_from(item[1])[0], hidden_too=hidden_too)]
        options = None if reblogged else reader.followed_options
        if options and hydrated:
            hydrated = [item for item in hydrated
                        if (taken := options.get(_AUTHOR_AUDIENCE.unpack_from(item[1])[0])) is None
                        or taken.admits(reblog=item[0] in reblogs_of, language=_language_of(item[1]))]
        # The usual page is for everyone to see: nothing to decide.
        seen = await self._seen_by(hydrated, reader) if restricted else hydrated
        originals: dict[int, bytes] = {}
        if reblogs_of:
            kept = {status_id for status_id, _, _ in seen}
            reblogs_of = {s: original for s, original in reblogs_of.items() if s in kept}
            if reblogs and reblogs_of:
                originals = await self._originals(reblogs_of, seen, reader, marks, hides)
            seen = [item for item in seen if item[0] not in reblogs_of or item[0] in originals]
        marked = NOTHING
        if marks and seen and reader.account_id is not None and self._marks is not None:
            marked = await self._marks.among(reader.account_id, [status_id for status_id, _, _ in seen],
                                             lambda: [thread_of(status_id, value) for status_id, value, _ in seen])
        filtered: dict[int, bytes] = {}
        if reader.context and seen and reader.account_id is not None and self._filters is not None:
            active = (await self._filters.of(reader.account_id)).in_context(reader.context)
            if active is not None:  # rare: most readers have no filters
                seen, filtered = _filter(seen, active, reblogs_of, originals, self._texts)
        shown_quotes = await self._quotes(seen, reader, marks, hides) if quoted else {}
        return Visible(seen, marked, originals, filtered, await self._polls_now(seen, reader), shown_quotes,
                       await self._approvals(seen, reader), _sensitized(seen, reader))

    async def _quotes(self, seen: list[Hydrated], reader: Reader, marks: bool, hides: Hides) -> dict[int, bytes]:
        """For each status that quotes another (a flag in its head says so), the Quote its reader is shown
        (kicau/quotes.py): the quoted status rendered for the reader with its own quote left shallow, or why not."""
        quoting = {status_id: quoted for status_id, value, _ in seen if value[FLAGS_AT] & HAS_QUOTE
                   and (quoted := quotes.quoted_in(memoryview(value)[_FRAGMENT_AT:])) is not None}
        if not quoting:
            return {}
        wanted = list(dict.fromkeys(quoting.values()))
        live = {status_id for status_id, _, _ in (await self._hydrate(wanted, suspended_too=reader.moderating))[0]}
        # Not the reader's filters: a quote shows what was quoted, as a reblog's original is matched through it.
        inner = await self._visible([s for s in wanted if s in live], replace(reader, context=""), marks,
                                    reblogs=False, reblogged=True, quoted=False)
        shown = {status_id: (_AUTHOR_AUDIENCE.unpack_from(value)[0],
                             compose_status(bytes(_shown_fragment(status_id, value, inner)), card))
                 for status_id, value, card in inner.seen}
        found: dict[int, bytes] = {}
        for status_id, quoted_id in quoting.items():
            if quoted_id not in live:
                found[status_id] = quotes.entity(quotes.DELETED)
            elif quoted_id not in shown:
                found[status_id] = quotes.entity(quotes.UNAUTHORIZED)
            else:
                author, rendered = shown[quoted_id]
                state = (quotes.BLOCKED_ACCOUNT if author in hides.blocking
                         else quotes.MUTED_ACCOUNT if author in hides.hidden else quotes.ACCEPTED)
                found[status_id] = quotes.entity(state, rendered)
        return found

    async def _approvals(self, seen: list[Hydrated], reader: Reader) -> frozenset[int]:
        """The statuses whose ``quote_approval.current_user`` the reader sees otherwise than their fragment says
        (kicau/quotes.py): anyone may quote a ``public`` one but an anonymous reader; its author may quote any of
        its own but a direct one or a reblog; a follower of its author may quote a ``followers`` one."""
        reading = reader.account_id
        if reading is None:
            return frozenset(status_id for status_id, value, _ in seen if value[FLAGS_AT] & QUOTED_BY_ANYONE)
        flipped: list[int] = []
        ask: dict[int, list[int]] = {}
        for status_id, value, _ in seen:
            flags = value[FLAGS_AT]
            if flags & QUOTED_BY_ANYONE:
                continue  # the usual status: automatic for every reader with an account
            author, audience, reblogged = _HYDRATED_HEAD.unpack_from(value)
            if author == reading:
                if audience != visibility.AUTHOR and not reblogged:
                    flipped.append(status_id)
            elif flags & QUOTED_BY_FOLLOWERS:
                if reader.follows_every_author:
                    flipped.append(status_id)
                else:
                    ask.setdefault(author, []).append(status_id)
        if ask:
            rows = await execute(self._session, self._follows_among, (reading, sorted(ask)))
            flipped += [status_id for row in rows for status_id in ask.get(int(row["followee_id"]), ())]
        return frozenset(flipped)

    async def _polls_now(self, seen: list[Hydrated], reader: Reader) -> dict[int, bytes]:
        """The poll of each status that has one, as it is now and as the reader sees it (kicau/polls.py): one
        round trip for the page's polls; nothing for a page without any (a byte of each head says)."""
        if self._polls is None or not any(value[FLAGS_AT] & HAS_POLL for _, value, _ in seen):
            return {}
        asked = {status_id: found for status_id, value, _ in seen if value[FLAGS_AT] & HAS_POLL
                 and (found := polls.definition_in(memoryview(value)[_FRAGMENT_AT:])) is not None}
        reading = reader.account_id
        tallies = await self._polls.tallies({s: len(poll.options) for s, poll in asked.items()}, reading)
        authors = {status_id: _AUTHOR_AUDIENCE.unpack_from(value)[0] for status_id, value, _ in seen
                   if status_id in asked}
        return {s: polls.encoded(polls.entity(s, poll, tallies[s], reader=reading, author=authors[s]))
                for s, poll in asked.items()}

    async def _originals(self, reblogged: dict[int, int], seen: list[Hydrated], reader: Reader, marks: bool,
                         hides: Hides) -> dict[int, bytes]:
        """For each reblog (``reblogged``: reblog -> original), the status it reblogs as the reader sees it; none
        where the reader may not see it, or where someone else reblogs a status of an account the reader blocks or
        mutes (the reader's own reblog of one still shows it)."""
        inner = await self._visible(list(dict.fromkeys(reblogged.values())), reader, marks, reblogs=False,
                                    reblogged=True)
        shown = {status_id: (value, compose_status(bytes(_shown_fragment(status_id, value, inner)), card))
                 for status_id, value, card in inner.seen}
        if hides.hidden:
            rebloggers = {status_id: _AUTHOR_AUDIENCE.unpack_from(value)[0] for status_id, value, _ in seen
                          if status_id in reblogged}
            return {s: shown[o][1] for s, o in reblogged.items()
                    if o in shown and (rebloggers.get(s) == reader.account_id
                                       or _AUTHOR_AUDIENCE.unpack_from(shown[o][0])[0] not in hides.hidden)}
        return {s: shown[o][1] for s, o in reblogged.items() if o in shown}

    async def _shown(self, status_ids: Sequence[int], reader: Reader, marks: bool = True,
                     reblogs: bool = True, quoted: bool = True) -> list[tuple[int, bytes | memoryview, bytes]]:
        """(status id, Status fragment as the reader is shown it, author's card) of each status it may see."""
        visible = await self._visible(status_ids, reader, marks, reblogs, quoted=quoted)
        return [(status_id, _shown_fragment(status_id, value, visible), card)
                for status_id, value, card in visible.seen]

    async def render(self, status_ids: Sequence[int], reader: Reader) -> list[bytes]:
        """Full Status JSON for each live id the reader may see, in the order given."""
        return [compose_status(bytes(fragment), card) for _, fragment, card in await self._shown(status_ids, reader)]

    async def render_array(self, status_ids: Sequence[int], reader: Reader) -> bytes:
        """``compose_status_list(render(status_ids, reader))``, built by one join that splices each cached fragment
        in place: a page is ~30 KB, and composing each status, then the list, copied all of it twice."""
        parts: list[bytes | memoryview] = [b"["]
        visible = await self._visible(status_ids, reader)
        marked = visible.marked
        anything = (_NONE if marked is NOTHING
                    else marked.favourited | marked.reblogged | marked.bookmarked | marked.pinned | marked.muted)
        if visible.filtered:
            anything = anything | visible.filtered.keys()
        if visible.polls:
            anything = anything | visible.polls.keys()
        if visible.quotes:
            anything = anything | visible.quotes.keys()
        if visible.approvals:
            anything = anything | visible.approvals
        if visible.sensitized:
            anything = anything | visible.sensitized
        for status_id, value, card in visible.seen:
            # As compose_status: the card under "account", then the fragment without its opening brace. The usual
            # status (no counts, no reblog, not marked by the reader) straight from its cached bytes; this is most
            # of every home page.
            if value[COUNTS_AT:ROOT_AT] == PLAIN and status_id not in anything:
                fragment: bytes | memoryview = memoryview(value)[_FRAGMENT_AT + 1:]
            else:
                fragment = _shown_fragment(status_id, value, visible)[1:]
            parts += (ACCOUNT_OPENING, card, b",", fragment, b",")
        if len(parts) > 1:
            parts[-1] = b"]"
        else:
            parts.append(b"]")
        return b"".join(parts)

    async def render_each(self, status_ids: Sequence[int], reader: Reader, marks: bool = True,
                          reblogs: bool = True) -> dict[int, bytes]:
        """``render`` by status id, for what embeds statuses in an order of its own (notifications, reblogs)."""
        shown = await self._shown(list(dict.fromkeys(status_ids)), reader, marks, reblogs)
        return {status_id: compose_status(bytes(fragment), card) for status_id, fragment, card in shown}

    async def visible_ids(self, status_ids: Sequence[int], reader: Reader) -> set[int]:
        """Those of the statuses that ``render_each`` would render, without rendering them (what a count needs)."""
        seen = (await self._visible(list(dict.fromkeys(status_ids)), reader, marks=False)).seen
        return {status_id for status_id, _, _ in seen}

    async def author_of(self, status_id: int) -> int | None:
        """Who wrote a status (whoever may see it); None for one deleted or unknown."""
        hydrated, _, _ = await self._hydrate([status_id])
        return _AUTHOR_AUDIENCE.unpack_from(hydrated[0][1])[0] if hydrated else None

    async def parent_of(self, status_id: int) -> int | None:
        """What a status replies to, whoever may see it: its parent's id, 0 for none; None for a status deleted or
        unknown. Mastodon walks a thread up past the statuses its reader may not see (those of an account that
        blocks it, a private one), showing only those it may: so does the timeline's ``context``."""
        hydrated, _, _ = await self._hydrate([status_id])
        if not hydrated:
            return None
        parent = _read_parent(memoryview(hydrated[0][1])[_FRAGMENT_AT:]).in_reply_to_id
        return int(parent) if parent else 0

    async def render_one(self, status_id: int, reader: Reader, marks: bool = True,
                         quoted: bool = True) -> bytes | None:
        """The status as the reader sees it; without ``marks``, as no one in particular (every flag false: what a
        stream event carries to all its readers); without ``quoted``, its own quote left shallow (as a quote shows
        the status it quotes, kicau/quotes.py)."""
        shown = await self._shown([status_id], reader, marks, quoted=quoted)
        return compose_status(bytes(shown[0][1]), shown[0][2]) if shown else None
