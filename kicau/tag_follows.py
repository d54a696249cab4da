"""Followed hashtags: an account's public home-timeline subscriptions to hashtags (``/api/v1/tags/:name/follow``,
``/api/v1/followed_tags``, a Tag's ``following``).

The record is Cassandra's (stack/migrations/0018_tag_follows.cql), written by the graph service, as follows
between accounts are:

* **follow**: a claim per (account, hashtag) with a lightweight transaction (``tag_follow_claims``), so a repeated
  follow is one and keeps its id (the account's list is ordered and paged by it); then the account's list
  (``followed_tags_by_account``) and the hashtag's followers (``tag_followers``), written again by every retry,
  so a crash after the claim is repaired by the next attempt.
* **unfollow**: the hashtag's followers and the list entry first, then the claim given back (conditional on its
  id): a crash in between leaves the claim, and the retry removes the rows again and gives it back.

The fanout reads ``tag_followers`` (through copies in memory, invalidated as account follower lists are,
kicau/follower_lists.py) for the hashtags of each batch's public statuses (not reblogs) and adds them
to those statuses' home-timeline writes and stream deliveries, as Mastodon's fanout delivers to hashtag
followers. A follow applies from the next batch on: statuses posted before it are not backfilled, and a home
timeline rebuilt from Cassandra holds the statuses of followed accounts only (as Mastodon's feed regeneration).
A hashtag followed by many accounts costs its statuses one timeline write per follower, as an account's followers
do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from cassandra.cluster import Session

from kicau.clients import execute, write_preparer
from kicau.marked_lists import MarkedList

# A hashtag's followers are read in pages of this many rows.
FOLLOWERS_FETCH_SIZE = 5000


class TagFollowStore:
    """The followed hashtags' Cassandra tables: the claims, each account's list and each hashtag's followers."""

    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        write = write_preparer(session, write_consistency)
        prepare = session.prepare
        self._claim = write("INSERT INTO tag_follow_claims (account_id, tag, follow_id) VALUES (?, ?, ?)"
                            " IF NOT EXISTS")
        self._release = write("DELETE FROM tag_follow_claims WHERE account_id = ? AND tag = ? IF follow_id = ?")
        self._claim_of = prepare("SELECT follow_id FROM tag_follow_claims WHERE account_id = ? AND tag = ?")
        self._claimed_among = prepare("SELECT tag FROM tag_follow_claims WHERE account_id = ? AND tag IN ?")
        self._list = write("INSERT INTO followed_tags_by_account (account_id, follow_id, tag) VALUES (?, ?, ?)")
        self._unlist = write("DELETE FROM followed_tags_by_account WHERE account_id = ? AND follow_id = ?")
        self._add_follower = write("INSERT INTO tag_followers (tag, account_id) VALUES (?, ?)")
        self._remove_follower = write("DELETE FROM tag_followers WHERE tag = ? AND account_id = ?")
        self._followers = prepare("SELECT account_id FROM tag_followers WHERE tag = ?")
        self._followers.fetch_size = FOLLOWERS_FETCH_SIZE
        self._of_account = MarkedList.prepare_of(str, prepare, "followed_tags_by_account", "account_id", "follow_id",
                                                 "tag")

    # Writes (the graph service) ------------------------------------------------------------------------------

    async def claim(self, account_id: int, tag: str, follow_id: int) -> int:
        """Claim the follow of ``tag`` (in normal form) under ``follow_id``, or find the claim already made; the
        follow's id. The caller then writes ``list_follow``, on every call, so a retry repairs a crash between."""
        row = (await execute(self._session, self._claim, (account_id, tag, follow_id)))[0]
        return follow_id if row["[applied]"] else int(row["follow_id"])

    async def list_follow(self, account_id: int, tag: str, follow_id: int) -> None:
        """The account's list entry and the hashtag's follower row of a claimed follow (idempotent)."""
        await asyncio.gather(execute(self._session, self._list, (account_id, follow_id, tag)),
                             execute(self._session, self._add_follower, (tag, account_id)))

    async def unlist_follow(self, account_id: int, tag: str, follow_id: int) -> None:
        """Remove the hashtag's follower row and the account's list entry of a follow (idempotent); the claim
        is given back after (``release``)."""
        await asyncio.gather(execute(self._session, self._remove_follower, (tag, account_id)),
                             execute(self._session, self._unlist, (account_id, follow_id)))

    async def release(self, account_id: int, tag: str, follow_id: int) -> bool:
        """Give the claim back; True when this call did (a concurrent unfollow may have)."""
        rows = await execute(self._session, self._release, (account_id, tag, follow_id))
        return bool(rows[0]["[applied]"])

    # Reads --------------------------------------------------------------------------------------------------

    async def follow_id(self, account_id: int, tag: str) -> int | None:
        rows = await execute(self._session, self._claim_of, (account_id, tag))
        return int(rows[0]["follow_id"]) if rows else None

    async def followed_among(self, account_id: int, tags: Iterable[str]) -> set[str]:
        """Which of ``tags`` the account follows (one read)."""
        wanted = sorted(set(tags))
        if not wanted:
            return set()
        rows = await execute(self._session, self._claimed_among, (account_id, wanted))
        return {row["tag"] for row in rows}

    async def of_account(self, account_id: int, *, max_id: int | None, since_id: int | None, min_id: int | None,
                         limit: int) -> list[tuple[int, str]]:
        """(follow id, hashtag) of the account's followed hashtags, most recently followed first, with Mastodon's
        cursors (follow ids, as Mastodon's Link headers give them)."""
        return await self._of_account.page(self._session, account_id, max_id=max_id, since_id=since_id,
                                           min_id=min_id, limit=limit)

    async def followers(self, tag: str) -> list[int]:
        """The accounts following ``tag`` (every page). The fanout keeps copies of these lists
        (kicau/follower_lists.py, ``keys.tag_followers_version``): a change to a hashtag's followers
        invalidates them before and after it writes (``follower_lists.forget_tags``)."""
        rows = await execute(self._session, self._followers, (tag,))
        return [int(row["account_id"]) for row in rows]
