"""Follow requests: following a locked account (Mastodon's ``locked``) asks it first.

A follow of a locked account that the follower does not already follow records a request instead of the edge
(services/graph/service.py): the account is notified (``follow_request``), the requester's Relationship shows
``requested`` and the target's ``requested_by``, and ``GET /api/v1/follow_requests`` lists it. The target
authorizes it (the follow is made then, with the options the request was made with, and notifies no one: the
request did) or rejects it; the requester withdraws it by unfollowing; a block either way ends it; an account that
unlocks authorizes every request waiting, as Mastodon's does.

Two tables, one partition the target's (stack/migrations/0032_follow_requests.cql): ``follow_requests`` by
(target, requester), the claim a lightweight transaction takes, holding the request's id and options, and
``follow_requests_by_target`` by request id, newest first, for the list. A request is claimed then listed, and
settled the other way round (the list entry, then the claim), each step idempotent, so a retry after a crash
anywhere finishes what it began; a list entry whose claim is gone (a crash between the two) is skipped when read
and removed by the next settlement.

The request's id is also its notification's, published with ``follow.requested`` (kicau/events.py) on the follows
topic keyed by the requester, once: the claim records that it was (``notified``), so a repeated request notifies
no one and a retry after a crash before the publish still does; ``follow.request_settled``, on the same partition
and so after it, removes that notification when the request ends however it ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cassandra.cluster import Session

from kicau.clients import execute, write_preparer
from kicau.follow_options import FollowOptions


@dataclass(frozen=True, slots=True)
class FollowRequest:
    requester_id: int
    target_id: int
    request_id: int  # also its notification's id
    options: FollowOptions  # those the follow is made with once authorized


@dataclass(frozen=True, slots=True)
class RequestClaim:
    request: FollowRequest
    created: bool  # False: the request was there already (a repeat, or a retry)
    notified: bool  # its notification was published (False on a retry after a crash before that)


class FollowRequestStore:
    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        write = write_preparer(session, write_consistency)
        self._claim = write(
            "INSERT INTO follow_requests (target_id, requester_id, request_id, reblogs, notify, languages)"
            " VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS")
        self._list = write("INSERT INTO follow_requests_by_target (target_id, request_id, requester_id)"
                           " VALUES (?, ?, ?)")
        self._unlist = write("DELETE FROM follow_requests_by_target WHERE target_id = ? AND request_id = ?")
        self._release = write("DELETE FROM follow_requests WHERE target_id = ? AND requester_id = ?")
        # Lightweight transactions: an update of a request ended meanwhile must not bring back part of its row.
        self._notified = write("UPDATE follow_requests SET notified = true WHERE target_id = ? AND requester_id = ?"
                               " IF EXISTS")
        self._options = write("UPDATE follow_requests SET reblogs = ?, notify = ?, languages = ?"
                              " WHERE target_id = ? AND requester_id = ? IF EXISTS")
        self._one = session.prepare("SELECT * FROM follow_requests WHERE target_id = ? AND requester_id = ?")
        self._page = session.prepare("SELECT request_id, requester_id FROM follow_requests_by_target"
                                     " WHERE target_id = ? AND request_id < ? LIMIT ?")
        self._claimed_among = session.prepare("SELECT requester_id, request_id FROM follow_requests"
                                              " WHERE target_id = ? AND requester_id IN ?")

    async def claim(self, requester_id: int, target_id: int, request_id: int,
                    options: FollowOptions) -> RequestClaim:
        """Record the request (listed too), unless it is there: then the one that is, listed again."""
        languages = sorted(options.languages) if options.languages else None
        rows = await execute(self._session, self._claim,
                             (target_id, requester_id, request_id, options.reblogs, options.notify, languages))
        row = rows[0]
        request = (FollowRequest(requester_id, target_id, request_id, options) if row["[applied]"]
                   else _from_row(row))
        await execute(self._session, self._list, (target_id, request.request_id, requester_id))
        return RequestClaim(request, bool(row["[applied]"]), not row["[applied]"] and bool(row.get("notified")))

    async def notified(self, request: FollowRequest) -> None:
        await execute(self._session, self._notified, (request.target_id, request.requester_id))

    async def change_options(self, request: FollowRequest, options: FollowOptions) -> None:
        """A request repeated with other options (as Mastodon's, the follow is then made with those)."""
        languages = sorted(options.languages) if options.languages else None
        await execute(self._session, self._options, (options.reblogs, options.notify, languages, request.target_id,
                                                     request.requester_id))

    async def find(self, requester_id: int, target_id: int) -> FollowRequest | None:
        rows = await execute(self._session, self._one, (target_id, requester_id))
        return _from_row(rows[0]) if rows else None

    async def settle(self, request: FollowRequest) -> None:
        """End the request: its list entry, then its claim."""
        await execute(self._session, self._unlist, (request.target_id, request.request_id))
        await execute(self._session, self._release, (request.target_id, request.requester_id))

    async def page(self, target_id: int, max_id: int, limit: int) -> list[tuple[int, int]]:
        """(request id, requester) of the target's requests below ``max_id``, newest first; an entry whose claim
        is gone (a settlement cut short) is left out."""
        rows = await execute(self._session, self._page, (target_id, max_id, limit))
        found = [(int(r["request_id"]), int(r["requester_id"])) for r in rows]
        if not found:
            return []
        claimed = await execute(self._session, self._claimed_among, (target_id, sorted({r for _, r in found})))
        standing = {(int(r["request_id"]), int(r["requester_id"])) for r in claimed}
        return [entry for entry in found if entry in standing]


def _from_row(row: dict[str, Any]) -> FollowRequest:
    languages = row.get("languages")
    options = FollowOptions(reblogs=bool(row["reblogs"]), notify=bool(row["notify"]),
                            languages=frozenset(languages) if languages else None)
    return FollowRequest(int(row["requester_id"]), int(row["target_id"]), int(row["request_id"]), options)
