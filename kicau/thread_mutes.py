"""Muted threads: ``POST /api/v1/statuses/:id/mute`` and ``/unmute``, Mastodon's "mute conversation".

An account mutes the thread a status belongs to (its root's, kicau/conversations.py: every reply records it), and
from then on:

* nothing about a status of that thread notifies it: no mention, favourite, reblog, edit (``update``) or
  ``status`` notification, as Mastodon's notify service drops them (the fanout asks, ``muted_by``);
* every status of the thread reads ``muted: true`` for it, from the member ``m<root id>`` in its set of marks
  (kicau/reader_marks.py) matched against the root each cached status carries (kicau/status_tallies.py).

The statuses themselves stay where they are (home, lists, conversations): a muted thread is quiet, not hidden.

The record is Cassandra's (stack/migrations/0034_thread_mutes.cql), written by the post service as bookmarks are
(kicau/bookmarks.py): a claim per (account, root) with a lightweight transaction, so a repeated mute is one; then
the mark, written again by a retry. Unmute takes the mark away first and the claim last, so a retry after a crash
finds the claim and repeats the rest. Muting a reblog mutes the thread of the status it reblogs, which is what a
client shows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from typing import Final

from cassandra.cluster import Session

from kicau.claims import Claims
from kicau.clients import execute
from kicau.notifications import Notification

# Partitions asked in one read: a batch may notify thousands (the ``status`` notifications of a large account), and
# one read of as many partitions would hold one coordinator for all of them.
_KEYS_A_READ: Final = 100


class ThreadMuteStore(Claims):
    """The claims table (kicau/claims.py; no event): ``(account_id, status_id: the thread's root) -> mute_id``;
    and, for the fanout, the roots of the statuses a batch notifies of."""

    def __init__(self, session: Session, write_consistency: int) -> None:
        super().__init__(session, write_consistency, table="thread_mute_claims", mark="mute_id", evented=False)
        self._session = session
        self._muted_by = session.prepare("SELECT account_id, status_id FROM thread_mute_claims WHERE account_id IN ?")
        self._roots = session.prepare("SELECT id, conversation_id FROM statuses WHERE id IN ?")

    async def muted_by(self, account_ids: Collection[int]) -> dict[int, set[int]]:
        """The roots of the threads each of ``account_ids`` mutes (only those that mute any): one read for a batch,
        which finds none for nearly every batch."""
        accounts = sorted(account_ids)
        reads = await asyncio.gather(*(execute(self._session, self._muted_by, (accounts[at:at + _KEYS_A_READ],))
                                       for at in range(0, len(accounts), _KEYS_A_READ)))
        muted: dict[int, set[int]] = {}
        for row in (row for rows in reads for row in rows):
            muted.setdefault(int(row["account_id"]), set()).add(int(row["status_id"]))
        return muted

    async def roots_of(self, status_ids: Collection[int]) -> dict[int, int]:
        """The root of each status's thread (kicau/conversations.py), of those that exist."""
        if not status_ids:
            return {}
        rows = await execute(self._session, self._roots, (sorted(status_ids),))
        return {int(row["id"]): int(row["conversation_id"] or row["id"]) for row in rows}


def unmuted(notices: Sequence[Notification], muted: Mapping[int, set[int]],
            roots: Mapping[int, int]) -> list[Notification]:
    """The notifications whose account does not mute the thread of the status they are about (``muted``: account ->
    muted roots; ``roots``: status -> its thread's root; a status missing from it is its own root)."""
    return [n for n in notices
            if not (n.status_id and n.account_id in muted
                    and roots.get(n.status_id, n.status_id) in muted[n.account_id])]
