"""Scheduled statuses: ``POST /api/v1/statuses`` with ``scheduled_at`` keeps the status for later and answers a
ScheduledStatus; ``GET/PUT/DELETE /api/v1/scheduled_statuses`` read, move and drop them; the post service publishes
each when its time comes, as if its author posted it then.

Mastodon's rules: at least ``MIN_LEAD`` ahead (five minutes), at most ``TOTAL_LIMIT`` waiting per account and
``DAILY_LIMIT`` due on any one day (UTC). A status is checked as a new one is when it is scheduled (its text, its
visibility, the status it replies to, its poll); what it says is published as it was scheduled, and a poll's end is
counted from then.

The record is Cassandra's (migration 0027): the account's ``scheduled_statuses`` (the entity as answered) and
``scheduled_due``, what falls due in each hour, written together in logged batches. The ``scheduled_runner`` (a
services/post/due_hours.py runner over ``scheduled_due`` and ``scheduled_progress``) publishes what is due through
the ordinary post path under the Idempotency-Key ``scheduled-<id>``: a scheduler that dies between the publish and
the removal (or two post services publishing the same hour) publish it once, as a client's retry would. A status
that can no longer be posted when it falls due (its author gone, the status it replies to or quotes deleted, a
quote its policy no longer allows) is dropped, as Mastodon drops it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import msgspec
from cassandra.cluster import Session
from cassandra.query import BatchStatement, BatchType

from kicau.clients import execute, write_preparer
from kicau.crash_points import crash_point
from kicau.marked_lists import MarkedList
from kicau.metrics import SCHEDULED_TAKEN_UP
from kicau.web import ApiError
from services.post.due_hours import DueRunner, HourProgress, hour_of

log = logging.getLogger(__name__)

MIN_LEAD: Final = timedelta(minutes=5)
TOTAL_LIMIT: Final = 300
DAILY_LIMIT: Final = 25
def idempotency_key(scheduled_id: int) -> str:
    """The key a scheduled status is published under: once, whoever publishes it and however often."""
    return f"scheduled-{scheduled_id}"


def iso(moment: datetime) -> str:
    """As Mastodon writes a time: UTC, milliseconds, ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(value: str) -> datetime:
    """An ISO 8601 time (``Z`` or an offset; none: UTC), to the millisecond Cassandra keeps; 422 otherwise."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ApiError(422, "Validation failed: Scheduled at is not a valid time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


class PollParams(msgspec.Struct):
    """A scheduled status's poll as asked for (kicau/polls.py): its end is counted from when it is posted."""

    options: list[str]
    expires_in: int
    multiple: bool = False
    hide_totals: bool = False


class Params(msgspec.Struct):
    """What a scheduled status will be posted with: Mastodon's ScheduledStatus ``params``."""

    text: str
    visibility: str
    sensitive: bool = False
    spoiler_text: str | None = None
    language: str | None = None
    in_reply_to_id: str | None = None
    poll: PollParams | None = None
    # Its attachments (services/post/media.py), held by the scheduled status until it is posted.
    media_ids: list[str] | None = None
    # The status it will quote, and who may quote it (kicau/quotes.py), as Mastodon 4.5 keeps them.
    quoted_status_id: str | None = None
    quote_approval_policy: str | None = None
    application_id: int | None = None
    scheduled_at: None = None
    idempotency: str | None = None
    with_rate_limit: bool = False


class ScheduledStatus(msgspec.Struct):
    id: str
    scheduled_at: str
    params: Params
    media_attachments: list[Any] = msgspec.field(default_factory=list)


_decode: Final = msgspec.json.Decoder(ScheduledStatus).decode


def decode(entity: str | bytes) -> ScheduledStatus:
    return _decode(entity)


@dataclass(frozen=True)
class Due:
    account_id: int
    scheduled_id: int
    scheduled_at: datetime


class ScheduledStore:
    """Cassandra's side: an account's scheduled statuses and what falls due each hour, written together."""

    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        self._consistency = write_consistency
        write = write_preparer(session, write_consistency)
        self._keep = write("INSERT INTO scheduled_statuses (account_id, id, scheduled_at, entity) VALUES (?, ?, ?, ?)")
        self._drop = write("DELETE FROM scheduled_statuses WHERE account_id = ? AND id = ?")
        self._plan = write("INSERT INTO scheduled_due (hour, scheduled_at, id, account_id) VALUES (?, ?, ?, ?)")
        self._unplan = write("DELETE FROM scheduled_due WHERE hour = ? AND scheduled_at = ? AND id = ?")
        self._one = session.prepare(
            "SELECT scheduled_at, entity FROM scheduled_statuses WHERE account_id = ? AND id = ?")
        self._times = session.prepare("SELECT scheduled_at FROM scheduled_statuses WHERE account_id = ?")
        self._due = session.prepare(
            "SELECT scheduled_at, id, account_id FROM scheduled_due WHERE hour = ? AND scheduled_at <= ?")
        self.progress = HourProgress(session, write_consistency, "scheduled_progress")
        self._list = MarkedList.prepare_of(str, session.prepare, "scheduled_statuses", "account_id", "id", "entity")

    def _batch(self) -> BatchStatement:
        return BatchStatement(batch_type=BatchType.LOGGED, consistency_level=self._consistency)

    async def keep(self, account_id: int, scheduled: ScheduledStatus, moment: datetime,
                   before: datetime | None = None) -> None:
        """Keep (or rewrite) a scheduled status due at ``moment``; ``before``: when it was due until now."""
        scheduled_id = int(scheduled.id)
        batch = self._batch()
        if before is not None and before != moment:
            batch.add(self._unplan, (hour_of(before), before, scheduled_id))
        batch.add(self._keep, (account_id, scheduled_id, moment, msgspec.json.encode(scheduled).decode()))
        batch.add(self._plan, (hour_of(moment), moment, scheduled_id, account_id))
        await execute(self._session, batch)

    async def drop(self, account_id: int, scheduled_id: int, moment: datetime) -> None:
        batch = self._batch()
        batch.add(self._drop, (account_id, scheduled_id))
        batch.add(self._unplan, (hour_of(moment), moment, scheduled_id))
        await execute(self._session, batch)

    async def unplan(self, due: Due) -> None:
        """A due entry whose scheduled status is gone (dropped meanwhile)."""
        await execute(self._session, self._unplan, (hour_of(due.scheduled_at), due.scheduled_at, due.scheduled_id))

    async def one(self, account_id: int, scheduled_id: int) -> tuple[datetime, ScheduledStatus] | None:
        rows = await execute(self._session, self._one, (account_id, scheduled_id))
        if not rows:
            return None
        return rows[0]["scheduled_at"].replace(tzinfo=UTC), decode(rows[0]["entity"])

    async def times(self, account_id: int) -> list[datetime]:
        """When each of the account's scheduled statuses is due (at most ``TOTAL_LIMIT``, so read whole)."""
        rows = await execute(self._session, self._times, (account_id,))
        return [row["scheduled_at"].replace(tzinfo=UTC) for row in rows]

    async def page(self, account_id: int, *, max_id: int | None, since_id: int | None, min_id: int | None,
                   limit: int) -> list[tuple[int, str]]:
        return await self._list.page(self._session, account_id, max_id=max_id, since_id=since_id, min_id=min_id,
                                     limit=limit)

    async def due(self, hour: int, now: datetime) -> list[Due]:
        rows = await execute(self._session, self._due, (hour, now))
        return [Due(int(row["account_id"]), int(row["id"]), row["scheduled_at"].replace(tzinfo=UTC)) for row in rows]


def check_time(moment: datetime, now: datetime, waiting: list[datetime], min_lead: timedelta) -> None:
    """Mastodon's rules for when a status may be scheduled, given when the account's others are due (``waiting``,
    the one being moved left out); 422 with Mastodon's words otherwise."""
    if moment < now + min_lead:
        raise ApiError(422, "Validation failed: Scheduled at The scheduled date must be in the future")
    if len(waiting) >= TOTAL_LIMIT:
        raise ApiError(422, f"Validation failed: You have exceeded the limit of {TOTAL_LIMIT} scheduled posts")
    if sum(1 for other in waiting if other.date() == moment.date()) >= DAILY_LIMIT:
        raise ApiError(422, f"Validation failed: You have exceeded the limit of {DAILY_LIMIT} scheduled posts "
                            "for that day")


Publish = Callable[[int, ScheduledStatus], Awaitable[object]]


def scheduled_runner(store: ScheduledStore, publish: Publish, *, poll_seconds: float = 1.0) -> DueRunner[Due]:
    """Publishes scheduled statuses as they fall due (see the module's docstring). ``publish`` posts one as its
    author (an ``ApiError`` of 4xx: it can no longer be posted, and is dropped)."""

    async def publish_due(due: Due) -> int:
        found = await store.one(due.account_id, due.scheduled_id)
        if found is None or found[0] != due.scheduled_at:
            await store.unplan(due)  # dropped, or moved to another time meanwhile
            return 0
        outcome = "posted"
        try:
            await publish(due.account_id, found[1])
        except ApiError as error:
            if error.status_code >= 500 or error.status_code == 409:
                raise  # the engines, or another publisher still at it: tried again next round
            log.info("scheduled status %s dropped: %s", due.scheduled_id, error.message)
            outcome = "dropped"
        crash_point("post.scheduled.published")
        SCHEDULED_TAKEN_UP.labels(outcome).inc()
        await store.drop(due.account_id, due.scheduled_id, due.scheduled_at)
        return 1

    return DueRunner("scheduled statuses", store, store.progress, publish_due, poll_seconds=poll_seconds)
