"""A follow's options (``POST /api/v1/accounts/:id/follow`` with ``reblogs``, ``notify``, ``languages``; a
Relationship's ``showing_reblogs``, ``notifying``, ``languages``).

As on Mastodon: a follower that hides a followee's reblogs gets none of them in its home timeline or streams; one
that asked to be notified gets a ``status`` notification for each new status of the followee that reaches it (not a
reblog, not a reply to someone else); one that named languages gets only the followee's statuses in those languages
(and those with none given).

The record is Cassandra's ``follow_options`` (stack/migrations/0021_follow_options.cql), written by the graph service
between the two drops of the followee's follower list version that every follow and unfollow makes, and only for
follows whose options are not the defaults. The fanout reads a followee's partition through copies kept under the
version it has just claimed for the follower list (``KeptOptions``): no Redis command of their own, and a Cassandra
read only when the version changed. A large account's statuses are not fanned out: a reader's options for the large
accounts it follows apply as its home page is shown (``Reader.followed_options``), and a gateway's answer of which
of its streams follow a large account carries each follow's options (``FollowOptionStore.among``), applied to the
broadcast status.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from cassandra.cluster import Session

from kicau.clients import execute, write_preparer
from kicau.follower_lists import KeptUnderVersions

# The most languages a follow may name (a form's fields are bounded: 100 in all, kicau's gateway).
MAX_LANGUAGES = 50
# A followee's options are read in pages of this many rows.
OPTIONS_FETCH_SIZE = 5000


@dataclass(frozen=True, slots=True)
class FollowOptions:
    reblogs: bool = True  # the followee's reblogs reach the follower's home timeline
    notify: bool = False  # the follower is notified of the followee's new statuses
    languages: frozenset[str] | None = None  # only statuses in these languages (or in none given); None: all

    @property
    def default(self) -> bool:
        return self.reblogs and not self.notify and self.languages is None

    def takes(self, language: str) -> bool:
        """Whether a status in ``language`` ("" for none given) reaches the follower."""
        return self.languages is None or not language or language in self.languages

    def admits(self, *, reblog: bool, language: str) -> bool:
        """Whether a status of the followee (a reblog or not, in ``language``) reaches the follower."""
        return (self.reblogs or not reblog) and self.takes(language)

    def changed(self, *, reblogs: bool | None, notify: bool | None,
                languages: Iterable[str] | None) -> FollowOptions:
        """These options with the ones given changed (None: unchanged; an empty ``languages``: every language)."""
        return FollowOptions(
            reblogs=self.reblogs if reblogs is None else reblogs,
            notify=self.notify if notify is None else notify,
            languages=self.languages if languages is None else (frozenset(languages) or None),
        )


DEFAULT = FollowOptions()


class ListEntry(NamedTuple):
    """An entry of an author's list (``statuses_by_account``): a status, whether it is a reblog and its language
    ("" for none given, and for entries from before the list kept them, migration 0022)."""

    status_id: int
    reblog: bool
    language: str


# Reads an author's newest list entries, with what a follow's options look at.
NEWEST_ENTRIES = "SELECT status_id, reblog, language FROM statuses_by_account WHERE account_id = ? LIMIT ?"


def entry_of(row: dict[str, Any]) -> ListEntry:
    return ListEntry(int(row["status_id"]), bool(row["reblog"]), row["language"] or "")


def admitted(entries: Iterable[ListEntry], options: FollowOptions) -> list[int]:
    """The statuses of a followee's list a follow lets into the follower's home timeline (a follow's backfill, a
    home timeline's rebuild): not reblogs, when it hides them; not statuses in languages it did not name."""
    return [entry.status_id for entry in entries if options.admits(reblog=entry.reblog, language=entry.language)]


# A follow's options as they travel between services and sit in caches: (followee or follower id, reblogs, notify,
# languages or None), for options other than the defaults.
EncodedOptions = list[tuple[int, bool, bool, list[str] | None]]


def encode_options(options: Mapping[int, FollowOptions]) -> EncodedOptions:
    return [(account_id, o.reblogs, o.notify, sorted(o.languages) if o.languages is not None else None)
            for account_id, o in options.items() if not o.default]


def decode_options(encoded: Iterable[Sequence[Any]]) -> dict[int, FollowOptions]:
    return {int(account_id): FollowOptions(bool(reblogs), bool(notify),
                                           frozenset(languages) if languages else None)
            for account_id, reblogs, notify, languages in encoded}


def _from_row(row: dict[str, Any]) -> FollowOptions:
    languages = row.get("languages")
    return FollowOptions(reblogs=not row.get("hide_reblogs"), notify=bool(row.get("notify")),
                         languages=frozenset(languages) if languages else None)


class FollowOptionStore:
    """The ``follow_options`` table: written by the graph service, read by it and by the fanout."""

    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        write = write_preparer(session, write_consistency)
        self._insert = write("INSERT INTO follow_options (followee_id, follower_id, hide_reblogs, notify, languages)"
                             " VALUES (?, ?, ?, ?, ?)")
        self._delete = write("DELETE FROM follow_options WHERE followee_id = ? AND follower_id = ?")
        self._one = session.prepare("SELECT * FROM follow_options WHERE followee_id = ? AND follower_id = ?")
        self._of_followee = session.prepare("SELECT * FROM follow_options WHERE followee_id = ?")
        self._of_followee.fetch_size = OPTIONS_FETCH_SIZE
        self._among = session.prepare("SELECT * FROM follow_options WHERE followee_id = ? AND follower_id IN ?")
        self._notify = write("INSERT INTO notified_followers (followee_id, follower_id, languages) VALUES (?, ?, ?)")
        self._unnotify = write("DELETE FROM notified_followers WHERE followee_id = ? AND follower_id = ?")
        self._notified = session.prepare("SELECT follower_id, languages FROM notified_followers WHERE followee_id = ?")
        self._notified.fetch_size = OPTIONS_FETCH_SIZE

    async def write(self, follower_id: int, followee_id: int, options: FollowOptions) -> None:
        """Record a follow's options (the defaults: no row), and whether it notifies (``notified``). Idempotent."""
        if options.default:
            await self.remove(follower_id, followee_id)
            return
        languages = sorted(options.languages) if options.languages else None
        await asyncio.gather(
            execute(self._session, self._insert, (followee_id, follower_id, not options.reblogs, options.notify,
                                                  languages)),
            execute(self._session, self._notify, (followee_id, follower_id, languages)) if options.notify
            else execute(self._session, self._unnotify, (followee_id, follower_id)))

    async def remove(self, follower_id: int, followee_id: int) -> None:
        await asyncio.gather(execute(self._session, self._delete, (followee_id, follower_id)),
                             execute(self._session, self._unnotify, (followee_id, follower_id)))

    async def notified(self, followee_id: int) -> dict[int, FollowOptions]:
        """The followee's followers that follow it with ``notify``, with the languages they take: no longer than the
        notifications each of its statuses sends (a large account's other options are not read with them)."""
        rows = await execute(self._session, self._notified, (followee_id,))
        return {int(row["follower_id"]): FollowOptions(notify=True, languages=frozenset(row["languages"])
                                                       if row["languages"] else None) for row in rows}

    async def of_follow(self, follower_id: int, followee_id: int) -> FollowOptions:
        rows = await execute(self._session, self._one, (followee_id, follower_id))
        return _from_row(rows[0]) if rows else DEFAULT

    async def among(self, followee_id: int, followers: Sequence[int]) -> dict[int, FollowOptions]:
        """The options of those of ``followers`` whose follows of the followee are not the defaults: reads inside
        the followee's partition, 100 keys at a time, all at once."""
        chunks = [list(followers[start:start + 100]) for start in range(0, len(followers), 100)]
        read = await asyncio.gather(*(execute(self._session, self._among, (followee_id, chunk)) for chunk in chunks))
        return {int(row["follower_id"]): _from_row(row) for rows in read for row in rows}

    async def of_follower(self, follower_id: int, followees: Sequence[int]) -> dict[int, FollowOptions]:
        """The follower's options for each of ``followees`` that are not the defaults (one read each, at once: a
        reader follows few large accounts)."""
        found = await asyncio.gather(*(self.of_follow(follower_id, followee) for followee in followees))
        return {followee: options for followee, options in zip(followees, found, strict=True) if not options.default}

    async def of_followee(self, followee_id: int) -> dict[int, FollowOptions]:
        """The options of the followee's followers that are not the defaults (every page)."""
        rows = await execute(self._session, self._of_followee, (followee_id,))
        return {int(row["follower_id"]): _from_row(row) for row in rows}


class KeptOptions(KeptUnderVersions[dict[int, FollowOptions]]):
    """Followees' options held by the fanout, under the follower list versions it has just claimed
    (``FollowerLists.claimed``), for the ``max_followees`` most recently used followees; and, kept the same way,
    the followers of large accounts that asked to be notified (``notified``)."""

    def __init__(self, store: FollowOptionStore, *, max_followees: int = 100_000, max_age: float = 300.0) -> None:
        super().__init__(store.of_followee, max_kept=max_followees, max_age=max_age)
        self.store = store
        self.notified = KeptUnderVersions(store.notified, max_kept=max_followees, max_age=max_age)

    async def options(self, claimed: Mapping[int, bytes]) -> dict[int, dict[int, FollowOptions]]:
        """The non-default options of each followee's followers, for followees whose version token is given."""
        return await self.of(claimed)
