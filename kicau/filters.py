"""Filters: Mastodon's ``/api/v2/filters``, an account's keyword and status filters applied where it reads.

A filter has a title, the contexts it applies in (``home``: home and list timelines and the ``user`` and ``list``
streams; ``public``: the public and hashtag timelines and streams; ``account``: profiles; ``thread``: a status's
context; ``notifications``), an action (``warn``: the status is shown with ``filtered`` saying which filters
matched, and why; ``hide``: it is left out; ``blur``: as ``warn``, for clients that blur media), an optional expiry,
and its rules: keywords (matched in a status's text and spoiler, case-insensitively, as whole words when asked)
and statuses. A reblog is matched by the status it reblogs, as on Mastodon.

The graph service owns them (Cassandra ``filters``, ``filter_keywords``, ``filter_statuses``: one partition an
account each). Readers hold them compiled (``ReaderFilters``): the timeline service from a Redis copy of the
account's filters (``keys.filters``, kept true by the copies Redis tracks, kicau/tracked_cache.py, so a reader
without filters costs a page no round trip), built from Cassandra when missing and dropped by the graph service on
each change, under a version the build checks (a build that read Cassandra before a change never stores what it
read); the gateway's stream hub from the graph service, for the accounts whose streams it holds, again on each
change (``keys.FILTERS_CHANGED``), when it also sends those streams Mastodon's ``filters_changed`` event.
"""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
from cassandra.cluster import Session
from cassandra.query import BatchStatement, BatchType
from redis.asyncio import Redis

from kicau import keys
from kicau.clients import execute, write_preparer
from kicau.entities import iso_time
from kicau.reader_copies import COPY_SECONDS, ReaderCopies
from kicau.reader_copies import change_commands as copy_changes
from kicau.tracked_cache import TrackedCache

CONTEXTS: Final = ("home", "notifications", "public", "thread", "account")
ACTIONS: Final = ("warn", "hide", "blur")
HOME: Final = "home"
NOTIFICATIONS: Final = "notifications"
PUBLIC: Final = "public"
THREAD: Final = "thread"
ACCOUNT: Final = "account"
# Bounds: filters an account keeps, rules a filter holds, and a title's and keyword's length.
MAX_FILTERS: Final = 100
MAX_RULES: Final = 100
MAX_TITLE: Final = 256
MAX_KEYWORD: Final = 512
# The longest expiry accepted, in seconds (Mastodon takes any; a bound keeps the arithmetic in range).
MAX_EXPIRES_IN: Final = 10 * 365 * 24 * 3600
# What Mastodon's streaming server sends for ``filters_changed``: no payload, written as ``undefined``.
CHANGED_PAYLOAD: Final = "undefined"


@dataclass(frozen=True, slots=True)
class Keyword:
    id: int
    filter_id: int
    keyword: str
    whole_word: bool


@dataclass(frozen=True, slots=True)
class StatusRule:
    id: int
    filter_id: int
    status_id: int


@dataclass(frozen=True, slots=True)
class Filter:
    id: int
    title: str
    contexts: tuple[str, ...]
    action: str
    expires_at: datetime | None
    keywords: tuple[Keyword, ...] = ()
    statuses: tuple[StatusRule, ...] = ()

    def active(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > now


def keyword_entity(keyword: Keyword) -> dict[str, Any]:
    return {"id": str(keyword.id), "keyword": keyword.keyword, "whole_word": keyword.whole_word}


def status_entity(rule: StatusRule) -> dict[str, Any]:
    return {"id": str(rule.id), "status_id": str(rule.status_id)}


def filter_entity(found: Filter, rules: bool = True) -> dict[str, Any]:
    """Mastodon's Filter entity; without its rules, as a FilterResult names it."""
    body: dict[str, Any] = {"id": str(found.id), "title": found.title, "context": list(found.contexts),
                            "expires_at": iso_time(found.expires_at) if found.expires_at else None,
                            "filter_action": found.action}
    if rules:
        body["keywords"] = [keyword_entity(k) for k in found.keywords]
        body["statuses"] = [status_entity(s) for s in found.statuses]
    return body


def v1_entities(filters: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The v1 view (``GET /api/v1/filters``) of Filter entities: one V1::Filter a keyword, as Mastodon shows v2
    filters to v1 clients (``irreversible`` for a ``hide`` filter)."""
    return [{"id": k["id"], "phrase": k["keyword"], "context": f["context"], "whole_word": k["whole_word"],
             "expires_at": f["expires_at"], "irreversible": f["filter_action"] == "hide"}
            for f in filters for k in f["keywords"]]


# The copy kept in Redis and given to readers: the filters as plain lists, decoded without a schema of their own.
def encode(filters: Sequence[Filter]) -> bytes:
    return msgspec.json.encode([
        [f.id, f.title, list(f.contexts), f.action, f.expires_at.timestamp() if f.expires_at else None,
         [[k.id, k.keyword, k.whole_word] for k in f.keywords], [[s.id, s.status_id] for s in f.statuses]]
        for f in filters])


def decode(raw: bytes | str) -> list[Filter]:
    return [Filter(int(fid), str(title), tuple(contexts), str(action),
                   datetime.fromtimestamp(expires, UTC) if expires is not None else None,
                   tuple(Keyword(int(kid), int(fid), str(word), bool(whole)) for kid, word, whole in words),
                   tuple(StatusRule(int(sid), int(fid), int(status)) for sid, status in statuses))
            for fid, title, contexts, action, expires, words, statuses in msgspec.json.decode(raw)]


def _keyword_pattern(keyword: Keyword) -> str:
    """Mastodon's: a whole word is bounded by ``\\b`` on each side that starts or ends with a word character."""
    escaped = re.escape(keyword.keyword)
    if not keyword.whole_word:
        return escaped
    start = r"\b" if re.match(r"\w", keyword.keyword) else ""
    end = r"\b" if re.search(r"\w$", keyword.keyword) else ""
    return f"{start}{escaped}{end}"


_TAG = re.compile(r"<[^>]*>")
_BREAK = re.compile(r"<br\s*/?>|</p>", re.IGNORECASE)


def searchable_text(content: str, spoiler_text: str) -> str:
    """What keywords are matched in: the spoiler and the content as plain text (Mastodon's ``searchable_text``)."""
    plain = html.unescape(_TAG.sub("", _BREAK.sub("\n", content)))
    return f"{spoiler_text}\n\n{plain}"


@dataclass(frozen=True, slots=True)
class _Compiled:
    found: Filter
    words: tuple[tuple[Keyword, re.Pattern[str]], ...]
    # All of the filter's keywords in one pattern: most statuses match none, and one search of the alternation
    # tells that where each keyword's own search took one pass over the text a keyword.
    any_word: re.Pattern[str] | None
    statuses: dict[int, StatusRule]
    result_head: bytes  # '{"filter":{...},' encoded once


class ContextFilters:
    """An account's filters active in one context, compiled."""

    __slots__ = ("_filters",)

    def __init__(self, filters: Sequence[Filter]) -> None:
        compiled = []
        for found in filters:
            patterns = [_keyword_pattern(k) for k in found.keywords]
            words = tuple((k, re.compile(pattern, re.IGNORECASE)) for k, pattern in zip(found.keywords, patterns,
                                                                                         strict=True))
            any_word = re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE) if patterns else None
            head = b'{"filter":' + msgspec.json.encode(filter_entity(found, rules=False)) + b","
            compiled.append(_Compiled(found, words, any_word, {s.status_id: s for s in found.statuses}, head))
        self._filters = tuple(compiled)

    def results(self, status_ids: Sequence[int], text: str | None) -> tuple[bool, bytes | None]:
        """Whether a status (of ``status_ids``: itself and, for a reblog, the status it reblogs) is to be hidden,
        and otherwise its FilterResults as a JSON array (None: no filter matched). ``text``: its searchable text
        (None: read only if a keyword needs it, which the caller then gives)."""
        results: list[bytes] = []
        for compiled in self._filters:
            words = ([k.keyword for k, pattern in compiled.words if pattern.search(text)]
                     if text is not None and compiled.any_word is not None and compiled.any_word.search(text) else [])
            matched = [str(compiled.statuses[s].status_id) for s in status_ids if s in compiled.statuses]
            if not words and not matched:
                continue
            if compiled.found.action == "hide":
                return True, None
            results.append(compiled.result_head + b'"keyword_matches":' + msgspec.json.encode(words or None)
                           + b',"status_matches":' + msgspec.json.encode(matched or None) + b"}")
        return False, (b"[" + b",".join(results) + b"]") if results else None

    @property
    def needs_text(self) -> bool:
        return any(c.words for c in self._filters)


class ReaderFilters:
    """An account's filters, with each context's compiled once."""

    __slots__ = ("_contexts", "filters")

    def __init__(self, filters: Sequence[Filter]) -> None:
        self.filters = tuple(filters)
        # context -> (its filters compiled, None for none; the moment the first of them expires, None for never).
        # A filter only ever stops applying (a change is a new ReaderFilters), so what applies stays the same
        # until that moment. Compiling on every page, as a reader with an expiring filter did, was ~20% of its
        # page (the patterns, and each filter's entity encoded).
        self._contexts: dict[str, tuple[ContextFilters | None, datetime | None]] = {}

    def in_context(self, context: str, now: datetime | None = None) -> ContextFilters | None:
        """The filters that apply in ``context`` now; None when none does (the usual reader)."""
        if not self.filters:
            return None
        moment = now or datetime.now(UTC)
        kept = self._contexts.get(context)
        if kept is not None and (kept[1] is None or moment < kept[1]):
            return kept[0]
        active = [f for f in self.filters if context in f.contexts and f.active(moment)]
        expiries = [f.expires_at for f in active if f.expires_at is not None]
        compiled = ContextFilters(active) if active else None
        self._contexts[context] = (compiled, min(expiries) if expiries else None)
        return compiled


NO_FILTERS: Final = ReaderFilters(())


class _Option(msgspec.Struct):
    title: str = ""


class _Poll(msgspec.Struct):
    options: list[_Option] = msgspec.field(default_factory=list)


class _Text(msgspec.Struct):
    content: str = ""
    spoiler_text: str = ""
    poll: _Poll | None = None


_read_text = msgspec.json.Decoder(_Text).decode


def text_of(status_json: bytes | memoryview | str) -> str:
    """The searchable text of a Status JSON (or a fragment of one): its spoiler and content, and its poll's options
    (kicau/polls.py), as Mastodon's ``searchable_text`` has them."""
    found = _read_text(status_json)
    text = searchable_text(found.content, found.spoiler_text)
    if found.poll is not None and found.poll.options:
        text += "\n\n" + "\n\n".join(option.title for option in found.poll.options)
    return text


class SearchableTexts:
    """Statuses' searchable text (``text_of``), derived once for each version of a status and remembered by its id.

    Why: a reader with keyword filters had each status of every page it read parsed, stripped of its markup and
    unescaped again: ~30% of such a page's time in the timeline service (py-spy). ``source`` is what the text
    comes from: a status's cached value (its fragment from ``start``), or the status rendered whole, as a reblog
    shows the status it reblogs (``start`` 0). The two are remembered apart, a status being read both ways on one
    page. The remembered text serves while the source is the same bytes, so an edit, which changes them, is read
    again."""

    def __init__(self, max_entries: int = 4096) -> None:
        self._max_entries = max_entries
        self._held: dict[tuple[int, int], tuple[bytes, str]] = {}

    def of(self, status_id: int, source: bytes, start: int = 0) -> str:
        """The searchable text of ``source[start:]``, the Status JSON (or fragment) of ``status_id``."""
        key = (status_id, start)
        held = self._held.get(key)
        if held is not None and held[0] == source:  # mostly the same object, as the copies hand it out
            return held[1]
        text = text_of(memoryview(source)[start:])
        self._held.pop(key, None)
        self._held[key] = (source, text)
        if len(self._held) > self._max_entries:
            del self._held[next(iter(self._held))]
        return text


_NONE_FILTERED: Final = b'"filtered":[]}'


def with_results(status_json: bytes, results: bytes) -> bytes:
    """The Status JSON (or fragment) with ``results`` as its ``filtered``, its last member (a reblog's own, after
    the status it reblogs)."""
    if status_json.endswith(_NONE_FILTERED):
        return status_json[:-len(_NONE_FILTERED)] + b'"filtered":' + results + b"}"
    return status_json[:-1] + b',"filtered":' + results + b"}"


class FilterStore:
    """The ``filters``, ``filter_keywords`` and ``filter_statuses`` tables: written by the graph service, read by it
    and, to build their copies, by readers."""

    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        self._consistency = write_consistency
        write = write_preparer(session, write_consistency)
        self._put_filter = write("INSERT INTO filters (account_id, id, title, contexts, action, expires_at)"
                                 " VALUES (?, ?, ?, ?, ?, ?)")
        self._drop_filter = write("DELETE FROM filters WHERE account_id = ? AND id = ?")
        self._put_keyword = write("INSERT INTO filter_keywords (account_id, id, filter_id, keyword, whole_word)"
                                  " VALUES (?, ?, ?, ?, ?)")
        self._drop_keyword = write("DELETE FROM filter_keywords WHERE account_id = ? AND id = ?")
        self._put_status = write("INSERT INTO filter_statuses (account_id, id, filter_id, status_id)"
                                 " VALUES (?, ?, ?, ?)")
        self._drop_status = write("DELETE FROM filter_statuses WHERE account_id = ? AND id = ?")
        prepare = session.prepare
        self._filters = prepare("SELECT * FROM filters WHERE account_id = ?")
        self._keywords = prepare("SELECT * FROM filter_keywords WHERE account_id = ?")
        self._statuses = prepare("SELECT * FROM filter_statuses WHERE account_id = ?")

    async def all(self, account_id: int) -> list[Filter]:
        """The account's filters, oldest first, each with its rules."""
        filters, words, statuses = await asyncio.gather(
            execute(self._session, self._filters, (account_id,)),
            execute(self._session, self._keywords, (account_id,)),
            execute(self._session, self._statuses, (account_id,)))
        by_filter: dict[int, tuple[list[Keyword], list[StatusRule]]] = {int(r["id"]): ([], []) for r in filters}
        for row in words:
            if int(row["filter_id"]) in by_filter:
                by_filter[int(row["filter_id"])][0].append(
                    Keyword(int(row["id"]), int(row["filter_id"]), str(row["keyword"]), bool(row["whole_word"])))
        for row in statuses:
            if int(row["filter_id"]) in by_filter:
                by_filter[int(row["filter_id"])][1].append(
                    StatusRule(int(row["id"]), int(row["filter_id"]), int(row["status_id"])))
        return [Filter(int(r["id"]), str(r["title"]), tuple(sorted(r["contexts"] or ())), str(r["action"]),
                       _utc(r.get("expires_at")), tuple(by_filter[int(r["id"])][0]), tuple(by_filter[int(r["id"])][1]))
                for r in filters]

    def _batch(self) -> BatchStatement:
        return BatchStatement(batch_type=BatchType.LOGGED, consistency_level=self._consistency)

    async def write(self, account_id: int, found: Filter, *, keywords: Sequence[Keyword] = (),
                    statuses: Sequence[StatusRule] = (), dropped_keywords: Sequence[int] = (),
                    dropped_statuses: Sequence[int] = ()) -> None:
        """The filter's row with the rules given written and those named dropped, in one logged batch (one
        partition a table: a filter never lands half-made)."""
        batch = self._batch()
        batch.add(self._put_filter, (account_id, found.id, found.title, set(found.contexts), found.action,
                                     found.expires_at))
        self._rules(batch, account_id, keywords, statuses, dropped_keywords, dropped_statuses)
        await execute(self._session, batch)

    async def rules(self, account_id: int, *, keywords: Sequence[Keyword] = (), statuses: Sequence[StatusRule] = (),
                    dropped_keywords: Sequence[int] = (), dropped_statuses: Sequence[int] = ()) -> None:
        batch = self._batch()
        self._rules(batch, account_id, keywords, statuses, dropped_keywords, dropped_statuses)
        await execute(self._session, batch)

    def _rules(self, batch: BatchStatement, account_id: int, keywords: Sequence[Keyword],
               statuses: Sequence[StatusRule], dropped_keywords: Sequence[int],
               dropped_statuses: Sequence[int]) -> None:
        for k in keywords:
            batch.add(self._put_keyword, (account_id, k.id, k.filter_id, k.keyword, k.whole_word))
        for s in statuses:
            batch.add(self._put_status, (account_id, s.id, s.filter_id, s.status_id))
        for keyword_id in dropped_keywords:
            batch.add(self._drop_keyword, (account_id, keyword_id))
        for rule_id in dropped_statuses:
            batch.add(self._drop_status, (account_id, rule_id))

    async def delete(self, account_id: int, found: Filter) -> None:
        """The filter and its rules, in one logged batch."""
        batch = self._batch()
        batch.add(self._drop_filter, (account_id, found.id))
        self._rules(batch, account_id, (), (), [k.id for k in found.keywords], [s.id for s in found.statuses])
        await execute(self._session, batch)


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class FilterCopies:
    """A reader's side: each account's filters, compiled, from its copy (kicau/reader_copies.py), built from
    Cassandra when missing."""

    def __init__(self, redis: Redis, store: FilterStore, copies: TrackedCache | None = None) -> None:
        self._store = store
        self._copies = ReaderCopies(redis, copies, key=keys.filters, version=keys.filters_version,
                                    build=self._build, decode=_compiled)

    async def of(self, account_id: int) -> ReaderFilters:
        return await self._copies.of(account_id)

    async def _build(self, account_id: int) -> tuple[bytes, int]:
        return encode(await self._store.all(account_id)), COPY_SECONDS


def _compiled(raw: bytes) -> ReaderFilters:
    return NO_FILTERS if raw == b"[]" else ReaderFilters(decode(raw))


def change_commands(account_id: int) -> list[bytes]:
    """What a change of the account's filters does to its copy, before Cassandra's write and again after it
    (kicau/reader_copies.py)."""
    return copy_changes((keys.filters(account_id), keys.filters_version(account_id)))
