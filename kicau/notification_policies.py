"""Notification policies: Mastodon 4.3's filtering of notifications from strangers (``/api/v2/notifications/policy``,
``/api/v1/notifications/requests``).

Each account says, for five kinds of sender, whether their notifications are accepted, filtered (held back: not in
its list, its streams or its unread counts, but kept, and grouped by sender into *requests* it may accept or
dismiss) or dropped (never recorded):

* ``for_not_following``: accounts it does not follow;
* ``for_not_followers``: accounts that do not follow it, or have for less than three days;
* ``for_new_accounts``: accounts made less than 30 days ago (that it does not follow);
* ``for_private_mentions``: private mentions from accounts it does not follow, unless they answer it (below);
* ``for_limited_accounts``: accounts a moderator limited (silenced: the admin action ``silence``) that it does not
  follow.

Mastodon's defaults are those of an account that never changed its policy: everything accepted but private
mentions from strangers and limited accounts, filtered. Only mentions, quotes, favourites, reblogs, follows and
follow requests are ever filtered (``FILTERABLE``, Mastodon 4.5's filterable types): a poll's end, an edit of a
reblogged or quoted status and a new status of an account followed with ``notify`` always notify. A sender whose
request was accepted is never filtered again (a *permission*). Where several kinds match, a drop wins over a filter.

A private mention *answers* the account when it replies to one of the account's own statuses (Mastodon looks
further: up the thread for a private mention of the sender by the account; Kicau looks at the status replied to).

The fanout decides, for each notification of a batch (``verdict``), from the policies of the notified accounts
(one read a batch that notifies anything filterable), and only for those whose policy could hold it back, the
follows both ways and the permissions (reads of the few accounts concerned). Filtered notifications are recorded in
a table of their own (kicau/notifications.py, ``FILTERED_TABLE``), with the same ids they would have had, and a
held private mention joins no conversation: accepting a request moves its sender's held notifications into the
account's list, as if they had never been held back, and its private mentions into the account's conversations
(kicau/conversations.py, ``joined_late``); dismissing it deletes them. A request is the sender's filtered
mentions and quotes, as Mastodon 4.5 makes them: one exists while any is held, its id is the sender's account id,
its ``last_status`` the newest of them, its ``notifications_count`` how many of them are held (at most
``MEANINGFUL``; the sender's other held notifications are not counted, and go with the request all the same). The
policy's summary counts the requests and sums their counts, both at most ``MEANINGFUL`` requests' worth.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import msgspec
from cassandra.cluster import Session

from kicau.clients import execute, write_preparer
from kicau.entities import iso_time
from kicau.ids import time_of_id
from kicau.notifications import FAVOURITE, FOLLOW, FOLLOW_REQUEST, MENTION, QUOTE, REBLOG, Notification

ACCEPT: Final = "accept"
FILTER: Final = "filter"
DROP: Final = "drop"
Verdict = Literal["accept", "filter", "drop"]
VERDICTS: Final[tuple[str, ...]] = (ACCEPT, FILTER, DROP)

FILTERABLE: Final = frozenset({MENTION, QUOTE, REBLOG, FOLLOW, FOLLOW_REQUEST, FAVOURITE})
# The notifications that make a request, and that its count counts.
REQUESTING: Final = frozenset({MENTION, QUOTE})
# Mastodon's MAX_MEANINGFUL_COUNT: no count of requests, or of a request's notifications, goes past it.
MEANINGFUL: Final = 100
NEW_ACCOUNT: Final = timedelta(days=30)
NEW_FOLLOWER: Final = timedelta(days=3)


class Policy(msgspec.Struct, frozen=True):
    """An account's policy; the defaults are Mastodon's."""

    for_not_following: str = ACCEPT
    for_not_followers: str = ACCEPT
    for_new_accounts: str = ACCEPT
    for_private_mentions: str = FILTER
    for_limited_accounts: str = FILTER


DEFAULT: Final = Policy()
FIELDS: Final[tuple[str, ...]] = Policy.__struct_fields__
# The v1 policy's names (Mastodon 4.2): a boolean each, true for filter.
V1_FIELDS: Final = {f"filter_{name.removeprefix('for_')}": name for name in FIELDS if name != "for_limited_accounts"}


def changed(policy: Policy, given: Mapping[str, str]) -> Policy:
    """``policy`` with the fields ``given`` (already checked: names of ``FIELDS``, values of ``VERDICTS``)."""
    return msgspec.structs.replace(policy, **given)


@dataclass(frozen=True, slots=True)
class Facts:
    """What a verdict needs to know of a sender, as its recipient sees it."""

    follows_sender: bool  # the recipient follows the sender
    followed_since: datetime | None  # since when the sender follows the recipient, if it does
    private_unanswered: bool = False  # a private mention that does not reply to the recipient
    sender_limited: bool = False  # a moderator limited the sender


def needs_facts(policy: Policy, notice: Notification, private: bool, limited: bool = False) -> bool:
    """Whether ``policy`` could hold ``notice`` back at all (``private``: it is a private mention; ``limited``: its
    sender is limited); if not, it is accepted without a read."""
    if notice.type not in FILTERABLE or notice.account_id == notice.from_account_id:
        return False
    kinds = (policy.for_not_following, policy.for_not_followers, policy.for_new_accounts)
    return (any(kind != ACCEPT for kind in kinds) or (private and policy.for_private_mentions != ACCEPT)
            or (limited and policy.for_limited_accounts != ACCEPT))


def verdict(policy: Policy, notice: Notification, facts: Facts, *, permitted: bool, now: datetime) -> Verdict:
    """Whether ``notice`` is accepted, filtered or dropped under ``policy`` (module doc)."""
    if notice.type not in FILTERABLE or permitted or notice.account_id == notice.from_account_id:
        return ACCEPT
    not_following = not facts.follows_sender
    not_follower = facts.followed_since is None or facts.followed_since > now - NEW_FOLLOWER
    created = time_of_id(notice.from_account_id)
    matched = [kind for kind, applies in (
        (policy.for_not_following, not_following),
        (policy.for_not_followers, not_follower),
        (policy.for_new_accounts, not_following and created > now - NEW_ACCOUNT),
        (policy.for_private_mentions, not_following and facts.private_unanswered),
        (policy.for_limited_accounts, not_following and facts.sender_limited),
    ) if applies]
    if DROP in matched:
        return DROP
    return FILTER if FILTER in matched else ACCEPT


def entity(policy: Policy, pending_requests: int, pending_notifications: int) -> dict[str, Any]:
    """Mastodon's NotificationPolicy (v2)."""
    return {**msgspec.structs.asdict(policy), "summary": {
        "pending_requests_count": pending_requests, "pending_notifications_count": pending_notifications}}


def v1_entity(policy: Policy, pending_requests: int, pending_notifications: int) -> dict[str, Any]:
    """Mastodon 4.2's NotificationPolicy: filtered or not (a drop shows as filtered)."""
    return {**{v1: getattr(policy, name) != ACCEPT for v1, name in V1_FIELDS.items()}, "summary": {
        "pending_requests_count": pending_requests, "pending_notifications_count": pending_notifications}}


@dataclass(frozen=True, slots=True)
class Request:
    """A notification request: a sender's held-back notifications, for one account."""

    from_account_id: int
    created_id: int  # the oldest held notification's id (its time: the request's creation)
    updated_id: int  # the newest's
    last_status_id: int | None  # the newest held mention's or quote's status
    count: int  # the held mentions and quotes (at most MEANINGFUL)


def rendered_request(request: Request, account_card: bytes, last_status: bytes | None) -> bytes:
    """Mastodon's NotificationRequest, with the sender's card and the last status (as its reader may see it;
    none: left out) spliced in undecoded."""
    created, updated = (iso_time(time_of_id(i))
                        for i in (request.created_id, request.updated_id))
    head = (f'{{"id":"{request.from_account_id}","created_at":"{created}","updated_at":"{updated}",'
            f'"notifications_count":"{request.count}","account":').encode()
    return head + account_card + (b',"last_status":' + last_status if last_status is not None else b"") + b"}"


def requests_of(held: Iterable[Notification]) -> list[Request]:
    """The requests ``held`` (an account's filtered notifications) make: one per sender of a held mention or
    quote, the greatest sender id first (a request's id is its sender's)."""
    by_sender: dict[int, list[Notification]] = {}
    for notice in held:
        by_sender.setdefault(notice.from_account_id, []).append(notice)
    found = []
    for sender, notices in by_sender.items():
        asking = [n for n in notices if n.type in REQUESTING]
        if not asking:
            continue
        ids = [n.id for n in notices]
        newest = max(asking, key=lambda n: n.id)
        found.append(Request(sender, min(ids), max(ids), newest.status_id, min(len(asking), MEANINGFUL)))
    return sorted(found, key=lambda r: r.from_account_id, reverse=True)


def summary_counts(requests: Sequence[Request]) -> tuple[int, int]:
    """The policy summary's ``pending_requests_count`` and ``pending_notifications_count``: the requests, and the
    sum of their counts, over ``MEANINGFUL`` of them at most (as Mastodon sums them)."""
    counted = requests[:MEANINGFUL]
    return len(counted), sum(r.count for r in counted)


class PolicyStore:
    """``notification_policies`` and ``notification_permissions`` (migration 0037)."""

    def __init__(self, session: Session, write_consistency: int) -> None:
        self._session = session
        write = write_preparer(session, write_consistency)
        self._set = write(f"INSERT INTO notification_policies (account_id, {', '.join(FIELDS)})"
                          f" VALUES (?, {', '.join('?' for _ in FIELDS)})")
        self._permit = write("INSERT INTO notification_permissions (account_id, from_account_id) VALUES (?, ?)")
        self._of = session.prepare(f"SELECT account_id, {', '.join(FIELDS)} FROM notification_policies"
                                   " WHERE account_id IN ?")
        self._permitted = session.prepare("SELECT from_account_id FROM notification_permissions"
                                          " WHERE account_id = ? AND from_account_id IN ?")

    async def of(self, accounts: Iterable[int]) -> dict[int, Policy]:
        """The policies of ``accounts`` (those never changed are left out: ``DEFAULT``); one read."""
        wanted = sorted(set(accounts))
        if not wanted:
            return {}
        rows = await execute(self._session, self._of, (wanted,))
        return {int(row["account_id"]): Policy(**{name: row[name] or getattr(DEFAULT, name) for name in FIELDS})
                for row in rows}

    async def one(self, account_id: int) -> Policy:
        return (await self.of([account_id])).get(account_id, DEFAULT)

    async def keep(self, account_id: int, policy: Policy) -> None:
        await execute(self._session, self._set, (account_id, *(getattr(policy, name) for name in FIELDS)))

    async def permit(self, account_id: int, senders: Iterable[int]) -> None:
        await asyncio.gather(*(execute(self._session, self._permit, (account_id, sender)) for sender in senders))

    async def permitted(self, senders_by_account: Mapping[int, Iterable[int]]) -> set[tuple[int, int]]:
        """The (account, sender) pairs among those asked whose sender the account accepted; a read an account."""
        accounts = [(account, sorted(set(senders))) for account, senders in senders_by_account.items()]
        answers = await asyncio.gather(*(execute(self._session, self._permitted, (account, senders))
                                         for account, senders in accounts if senders))
        return {(account, int(row["from_account_id"]))
                for (account, _), rows in zip([a for a in accounts if a[1]], answers, strict=True) for row in rows}


class Relations:
    """The follows a verdict needs, from Cassandra's ``following`` and ``followers`` (with their times)."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._follows = session.prepare(
            "SELECT followee_id FROM following WHERE follower_id = ? AND followee_id IN ?")
        self._followed_by = session.prepare(
            "SELECT follower_id, created_at FROM followers WHERE followee_id = ? AND follower_id IN ?")

    async def of(self, senders_by_account: Mapping[int, Iterable[int]]
                 ) -> tuple[set[tuple[int, int]], dict[tuple[int, int], datetime]]:
        """For each account and its senders: which senders it follows ((account, sender) pairs), and since when
        each sender that follows it has (by the same pairs). Two reads an account."""
        accounts = [(account, sorted(set(senders))) for account, senders in senders_by_account.items() if senders]
        answers = await asyncio.gather(*(
            asyncio.gather(execute(self._session, self._follows, (account, senders)),
                           execute(self._session, self._followed_by, (account, senders)))
            for account, senders in accounts))
        follows: set[tuple[int, int]] = set()
        followed: dict[tuple[int, int], datetime] = {}
        for (account, _), (following_rows, follower_rows) in zip(accounts, answers, strict=True):
            follows.update((account, int(row["followee_id"])) for row in following_rows)
            for row in follower_rows:
                since = row["created_at"]
                followed[(account, int(row["follower_id"]))] = (
                    since.replace(tzinfo=UTC) if since is not None else datetime.fromtimestamp(0, UTC))
        return follows, followed


def private_unanswered(notice: Notification, private_statuses: Mapping[int, int]) -> bool:
    """Whether ``notice`` is a private mention not answering its recipient; ``private_statuses``: each direct
    status of the batch and the account it replies to (0 for none)."""
    status_id = notice.status_id
    return (notice.type == MENTION and status_id is not None and status_id in private_statuses
            and private_statuses[status_id] != notice.account_id)


def split(notices: Sequence[Notification], verdicts: Mapping[int, Verdict]) -> tuple[
        list[Notification], list[Notification]]:
    """The accepted and the filtered among ``notices`` (by index in ``verdicts``; absent: accepted); the dropped
    are in neither."""
    accepted, held = [], []
    for index, notice in enumerate(notices):
        decided = verdicts.get(index, ACCEPT)
        if decided == ACCEPT:
            accepted.append(notice)
        elif decided == FILTER:
            held.append(notice)
    return accepted, held
