"""The Cassandra reads the fanout needs: who follows an author (and hides it), and an author's newest statuses."""

from __future__ import annotations

import asyncio

from cassandra.cluster import Session

from kicau.blocks_and_mutes import BlocksAndMutes, status_hiders
from kicau.clients import execute
from kicau.follow_options import NEWEST_ENTRIES, ListEntry, entry_of


class FollowGraph:
    def __init__(self, session: Session, hides: BlocksAndMutes) -> None:
        self._session = session
        self.hides = hides
        self._followers = session.prepare("SELECT follower_id FROM followers WHERE followee_id = ?")
        self._followers.fetch_size = 5000
        self._followers_among = session.prepare(
            "SELECT follower_id FROM followers WHERE followee_id = ? AND follower_id IN ?")
        self._newest = session.prepare(NEWEST_ENTRIES)

    async def followers(self, account_id: int) -> list[int]:
        rows = await execute(self._session, self._followers, (account_id,))
        return [int(r["follower_id"]) for r in rows]

    async def audience(self, account_id: int) -> list[int]:
        """The followers an author's statuses go to: those that neither block nor mute it
        (kicau/blocks_and_mutes.py). Kept in memory under the author's follower list version, which a hide drops
        as a follow does."""
        followers, hiders = await asyncio.gather(self.followers(account_id), self.hides.hiders(account_id))
        if not hiders:
            return followers
        hidden = status_hiders(hiders)
        return [f for f in followers if f not in hidden]

    async def followers_among(self, account_id: int, candidates: list[int]) -> list[int]:
        """Those of ``candidates`` that follow the account, in the order given (one read, whatever its size)."""
        if not candidates:
            return []
        rows = await execute(self._session, self._followers_among, (account_id, sorted(set(candidates))))
        following = {int(r["follower_id"]) for r in rows}
        return [c for c in candidates if c in following]

    async def newest_statuses(self, account_id: int, limit: int) -> list[ListEntry]:
        """The account's newest ``limit`` entries, newest first: whether each is a reblog, and its language."""
        if limit <= 0:
            return []
        rows = await execute(self._session, self._newest, (account_id, limit))
        return [entry_of(row) for row in rows]

