"""Notifications: an account is told when a status mentions it, when someone starts following it, when someone
favourites or reblogs one of its statuses (kicau/favourites.py, kicau/reblogs.py), when an account it follows
with ``notify`` posts (kicau/follow_options.py; its id is the status's, or ``StatusCreated.status_notification_id``
for a status that mentions anyone: a follower it mentions is told both, as Mastodon tells it), and when a status
it reblogged is edited (``update``; its id is the edit's version id, services/post/edits.py), and when an account
asks to follow it, locked (``follow_request``, its id the request's, kicau/follow_requests.py; removed when the
request ends). Staff are told when an account signs up (``admin.sign_up``, to those who may manage accounts) and when
a report is filed (``admin.report``, with the Report, to those who may manage reports), as Mastodon tells them; a
staff account reads them only while its role still grants that permission (``STAFF_TYPES``). An account is told
when staff act on it (``moderation_warning``, with the AccountWarning, kicau/account_warnings.py).

They are derived from events, as home timelines are. The fanout records them in Cassandra (``notifications``,
one partition an account, newest first) in the batch that applies the event, and delivers them to the account's
open streams as Mastodon's ``notification`` event; the timeline service serves, dismisses and clears them
(``/api/v1/notifications``). A notification's id orders it in time as Mastodon's do: a mention's is its status's
id (one status mentions an account once), a follow's is assigned by the graph service when the follow is new
(``FollowCreated.notification_id``), a favourite's is the favourite's own id and a reblog's the reblog's (given
back, their notifications go). Recording the same event twice writes the same row.

A notification holds ids, never copies: it is rendered when read from the account's cached card and the status
as the reader may see it, so a deleted status's mention is gone with it, as in Mastodon.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cassandra.cluster import Session

from kicau.clients import execute, write_preparer
from kicau.entities import iso_time
from kicau.ids import ABOVE_EVERY_ID, BELOW_EVERY_ID, time_of_id
from kicau.notification_groups import group_key

MENTION: Final = "mention"
FOLLOW: Final = "follow"
FAVOURITE: Final = "favourite"
REBLOG: Final = "reblog"
STATUS: Final = "status"  # a new status of an account followed with ``notify`` (kicau/follow_options.py)
UPDATE: Final = "update"  # a status the account reblogged was edited (services/post/edits.py)
FOLLOW_REQUEST: Final = "follow_request"  # an account asks to follow this locked one (kicau/follow_requests.py)
POLL: Final = "poll"  # a poll the account posted or voted in ended (kicau/polls.py)
QUOTE: Final = "quote"  # a status quotes one of the account's (kicau/quotes.py); id StatusCreated.quote_notification_id
QUOTED_UPDATE: Final = "quoted_update"  # a status the account quotes was edited; names the account's quote
# The staff's (kicau/staff.py): an account signed up (its id the account's), a report was filed (the report's).
ADMIN_SIGN_UP: Final = "admin.sign_up"
ADMIN_REPORT: Final = "admin.report"
# Staff took an action on the account (kicau/account_warnings.py): its id the warning's, from the account itself.
MODERATION_WARNING: Final = "moderation_warning"
# The types Kicau records; a request may name any of Mastodon's (``types[]``), and the others match nothing.
RECORDED: Final = frozenset({MENTION, FOLLOW, FAVOURITE, REBLOG, STATUS, UPDATE, FOLLOW_REQUEST, POLL, QUOTE,
                             QUOTED_UPDATE, ADMIN_SIGN_UP, ADMIN_REPORT, MODERATION_WARNING})
# Who among the staff is told of each of the staff's types, by the permission it needs (kicau/staff.py); only
# while it has the permission does a staff account read them.
STAFF_TYPES: Final = {ADMIN_SIGN_UP: "manage_users", ADMIN_REPORT: "manage_reports"}


@dataclass(frozen=True, slots=True)
class Notification:
    account_id: int  # who is notified
    id: int
    type: str
    from_account_id: int  # who mentioned, followed, favourited or reblogged
    status_id: int | None = None  # the mentioning status, or the one favourited or reblogged


def rendered(notification: Notification, account_card: bytes, status: bytes | None,
             report: bytes | None = None, warning: bytes | None = None) -> bytes:
    """Mastodon's Notification entity, with the account's card, the status (Status JSON, as its reader may see it),
    for an ``admin.report`` the report (Report JSON) and for a ``moderation_warning`` the warning (AccountWarning
    JSON) spliced in undecoded."""
    moment = iso_time(time_of_id(notification.id))
    key = group_key(notification.id, notification.type, notification.status_id)
    head = (f'{{"id":"{notification.id}","type":"{notification.type}","created_at":"{moment}",'
            f'"group_key":"{key}","account":').encode()
    return (head + account_card + (b',"status":' + status if status is not None else b"")
            + (b',"report":' + report if report is not None else b"")
            + (b',"moderation_warning":' + warning if warning is not None else b"") + b"}")


# The notifications an account's policy held back (kicau/notification_policies.py): the same shape, apart.
FILTERED_TABLE: Final = "filtered_notifications"


class NotificationStore:
    """The ``notifications`` table (or ``FILTERED_TABLE``): recorded by the fanout, read and dismissed by the
    timeline service."""

    def __init__(self, session: Session, write_consistency: int, table: str = "notifications") -> None:
        self._session = session
        write = write_preparer(session, write_consistency)
        self._insert = write(f"INSERT INTO {table} (account_id, id, type, from_account_id, status_id)"
                             " VALUES (?, ?, ?, ?, ?)")
        self._delete = write(f"DELETE FROM {table} WHERE account_id = ? AND id = ?")
        self._clear = write(f"DELETE FROM {table} WHERE account_id = ?")
        prepare = session.prepare
        self._newest = prepare(f"SELECT * FROM {table} WHERE account_id = ? AND id < ? AND id > ? LIMIT ?")
        self._oldest_above = prepare(f"SELECT * FROM {table} WHERE account_id = ? AND id > ? AND id < ?"
                                     " ORDER BY id ASC LIMIT ?")
        self._one = prepare(f"SELECT * FROM {table} WHERE account_id = ? AND id = ?")

    async def apply(self, recorded: Iterable[Notification], removed: Iterable[tuple[int, int]] = ()) -> None:
        """Record notifications and remove others ((account, id) pairs): each a write of its own, all at once,
        since they fall in as many partitions as accounts notified. Never one notification both recorded and
        removed in a call: the two writes would race."""
        await asyncio.gather(
            *(execute(self._session, self._insert, (n.account_id, n.id, n.type, n.from_account_id, n.status_id))
              for n in recorded),
            *(execute(self._session, self._delete, pair) for pair in removed),
        )

    async def page(self, account_id: int, *, max_id: int | None, since_id: int | None, min_id: int | None,
                   limit: int) -> list[Notification]:
        """Newest first, with Mastodon's cursors (``min_id`` walks forward from the cursor)."""
        upper = max_id if max_id is not None else ABOVE_EVERY_ID
        if min_id is not None:
            rows = await execute(self._session, self._oldest_above, (account_id, min_id, upper, limit))
            rows.reverse()
        else:
            lower = since_id if since_id is not None else BELOW_EVERY_ID
            rows = await execute(self._session, self._newest, (account_id, upper, lower, limit))
        return [_from_row(row) for row in rows]

    async def one(self, account_id: int, notification_id: int) -> Notification | None:
        rows = await execute(self._session, self._one, (account_id, notification_id))
        return _from_row(rows[0]) if rows else None

    async def dismiss(self, account_id: int, notification_id: int) -> None:
        await execute(self._session, self._delete, (account_id, notification_id))

    async def clear(self, account_id: int) -> None:
        await execute(self._session, self._clear, (account_id,))


class UpdateNotices:
    """The ``update`` an edited status's boosters were last told (Cassandra ``status_update_notices``, migration
    0050): each edit's replaces the one before (removed as the new one is recorded), as Mastodon keeps one ``update``
    per status and account. The row names the latest and the one before it, so a batch applied again (the same
    edit's notification the latest already) still finds the one to remove."""

    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        self._read = session.prepare("SELECT notification_id, previous_id FROM status_update_notices"
                                     " WHERE status_id = ?")
        self._write = write_preparer(session, write_consistency)(
            "INSERT INTO status_update_notices (status_id, notification_id, previous_id) VALUES (?, ?, ?)")

    async def replaced(self, status_id: int, notification_id: int) -> int:
        """The id of the ``update`` that ``notification_id`` replaces for the status's boosters (0: none), noted as
        the status's latest."""
        rows = await execute(self._session, self._read, (status_id,))
        latest = int(rows[0]["notification_id"] or 0) if rows else 0
        previous = int(rows[0]["previous_id"] or 0) if rows else 0
        replaced = previous if latest == notification_id else latest
        if latest != notification_id:
            await execute(self._session, self._write, (status_id, notification_id, replaced))
        return replaced


def _from_row(row: dict[str, Any]) -> Notification:
    status_id = row.get("status_id")
    return Notification(int(row["account_id"]), int(row["id"]), str(row["type"]), int(row["from_account_id"]),
                        int(status_id) if status_id is not None else None)


def wanted_types(types: Sequence[str], exclude: Sequence[str]) -> frozenset[str]:
    """The recorded types a request asks for: ``types[]`` (all if none), less ``exclude_types[]``."""
    return (frozenset(types) & RECORDED if types else RECORDED) - frozenset(exclude)
