"""Featured hashtags: the hashtags an account shows on its profile with how often and how lately it used them
(Mastodon's FeaturedTag: ``/api/v1/featured_tags``, ``/api/v1/accounts/:id/featured_tags``), and the hashtags
featuring suggests (its most recently used).

Use is recorded by the fanout (stack/migrations/0019_featured_tags.cql), with the batch that applies the events
and before their offsets are committed: each public or unlisted status (no reblog; Mastodon counts the statuses
it distributes) under each of its hashtags in ``account_tag_statuses`` (a partition an account and hashtag), a
deleted one removed; and the account's newest use of each hashtag in ``account_tags``, written with the status's
time as the write's timestamp, so that a replayed older batch never overwrites a newer use. A FeaturedTag's
``statuses_count`` counts its partition and ``last_status_at`` is the day of its newest status. Statuses posted
before this record existed are not counted.

The features themselves are the graph service's: a row per (account, hashtag) claimed with a lightweight
transaction, so a repeated request features a hashtag once under one id; at most ``MAX_FEATURED`` (checked before
the claim: two requests racing past the ninth may make eleven, as Mastodon's validation may).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote

from cassandra.cluster import Session
from cassandra.query import BatchStatement, BatchType

from kicau.clients import execute, write_preparer
from kicau.ids import ms_from_id, time_of_id
from kicau.visibility import PUBLIC, UNLISTED

MAX_FEATURED = 10
SUGGESTED = 10
# The visibilities whose statuses count (Mastodon's "distributable" statuses).
COUNTED = frozenset({PUBLIC, UNLISTED})


def use_timestamp(status_id: int) -> int:
    """The write timestamp (µs) of a use: the status's time, its id's low bits breaking ties within a
    millisecond, so a later status's use always wins."""
    return ms_from_id(status_id) * 1000 + status_id % 1000


def entity(featured_id: int, tag: str, username: str, public_url: str, count: int,
           newest: int | None) -> dict[str, Any]:
    """Mastodon's FeaturedTag; ``newest`` the id of the account's newest status with the hashtag. The count is a
    string, as Mastodon writes it (and Mastodon.py reads it)."""
    last = time_of_id(newest).strftime("%Y-%m-%d") if newest is not None else None
    return {"id": str(featured_id), "name": tag,
            "url": f"{public_url}/@{username}/tagged/{quote(tag, safe='')}",
            "statuses_count": str(count), "last_status_at": last}


class AccountTagUses:
    """``account_tag_statuses`` and ``account_tags``: written by the fanout, read by the graph service."""

    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        self._consistency = write_consistency
        write = write_preparer(session, write_consistency)
        self._insert = write("INSERT INTO account_tag_statuses (account_id, tag, status_id) VALUES (?, ?, ?)")
        self._delete = write("DELETE FROM account_tag_statuses WHERE account_id = ? AND tag = ? AND status_id = ?")
        self._used = write("INSERT INTO account_tags (account_id, tag, last_status_id) VALUES (?, ?, ?)"
                           " USING TIMESTAMP ?")
        self._count = session.prepare("SELECT COUNT(*) AS n, MAX(status_id) AS newest FROM account_tag_statuses"
                                      " WHERE account_id = ? AND tag = ?")
        self._tags = session.prepare("SELECT tag, last_status_id FROM account_tags WHERE account_id = ?")

    async def apply(self, added: Iterable[tuple[int, str, int]], removed: Iterable[tuple[int, str, int]]) -> None:
        """Record (account, hashtag, status id) uses and remove deleted ones; never one both added and removed in
        a call. One unlogged batch an account: its two tables' partitions are all the account's."""
        batches: dict[int, BatchStatement] = {}

        def batch_of(account_id: int) -> BatchStatement:
            batch = batches.get(account_id)
            if batch is None:
                batch = batches[account_id] = BatchStatement(batch_type=BatchType.UNLOGGED,
                                                             consistency_level=self._consistency)
            return batch

        for account_id, tag, status_id in added:
            batch = batch_of(account_id)
            batch.add(self._insert, (account_id, tag, status_id))
            batch.add(self._used, (account_id, tag, status_id, use_timestamp(status_id)))
        for account_id, tag, status_id in removed:
            batch_of(account_id).add(self._delete, (account_id, tag, status_id))
        await asyncio.gather(*(execute(self._session, batch) for batch in batches.values()))

    async def counts(self, account_id: int, tags: Sequence[str]) -> list[tuple[int, int | None]]:
        """(statuses, newest status id or None) of the account with each of ``tags``, read at once."""
        rows = await asyncio.gather(*(execute(self._session, self._count, (account_id, tag)) for tag in tags))
        return [(int(found[0]["n"]), found[0]["newest"]) if found else (0, None) for found in rows]

    async def recent(self, account_id: int) -> list[str]:
        """The hashtags the account has used, most recently used first."""
        rows = await execute(self._session, self._tags, (account_id,))
        rows.sort(key=lambda row: (-int(row["last_status_id"] or 0), row["tag"]))
        return [row["tag"] for row in rows]


class FeaturedTagStore:
    """``featured_tags``: the graph service's."""

    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        write = write_preparer(session, write_consistency)
        self._claim = write("INSERT INTO featured_tags (account_id, tag, featured_id) VALUES (?, ?, ?) IF NOT EXISTS")
        self._release = write("DELETE FROM featured_tags WHERE account_id = ? AND tag = ? IF featured_id = ?")
        self._of_account = session.prepare("SELECT tag, featured_id FROM featured_tags WHERE account_id = ?")

    async def of_account(self, account_id: int) -> list[tuple[int, str]]:
        """(feature id, hashtag) of the account's featured hashtags, in the order they were featured."""
        rows = await execute(self._session, self._of_account, (account_id,))
        return sorted((int(row["featured_id"]), row["tag"]) for row in rows)

    async def feature(self, account_id: int, tag: str, featured_id: int) -> int:
        """Feature ``tag`` under ``featured_id``, or find it featured already; its feature's id."""
        row = (await execute(self._session, self._claim, (account_id, tag, featured_id)))[0]
        return featured_id if row["[applied]"] else int(row["featured_id"])

    async def unfeature(self, account_id: int, tag: str, featured_id: int) -> bool:
        """Stop featuring; True when this call did (a concurrent request may have)."""
        rows = await execute(self._session, self._release, (account_id, tag, featured_id))
        return bool(rows[0]["[applied]"])
