"""Applying a batch of events to Redis: home timelines, author feeds, the status cache and stream deliveries.

Every write is idempotent (adding an id already present, removing one already gone, caching the same bytes),
so a batch replayed after a crash changes nothing: offsets are committed only after the whole batch is in
Redis. Cassandra reads for the batch are issued concurrently up front; the Redis writes then go out in
pipelined chunks, never one round trip per follower.

Notifications (kicau/notifications.py) are recorded in Cassandra alongside the batch's Redis writes: a mention
for each account a new status mentions, a follow for each new follow; a deleted status's mentions are removed.
Online accounts get them on their streams with the batch's other deliveries. The notified accounts' policies
(kicau/notification_policies.py) may hold some back (recorded apart, never streamed) or drop them. A sign-up or
a report (published by the graph service) tells the staff whose role may act on it (kicau/staff.py), read then.

A public status also goes to the public timeline (kicau/public_timeline.py): Cassandra's record of it,
alongside the notifications, and then (as a rebuild of Redis's list reads that record) Redis's list; and, for each
of its hashtags, to that hashtag's timeline (kicau/tag_timeline.py, Cassandra only).

Each public or unlisted status with hashtags (not a reblog) is recorded under its author and each hashtag, for
featured hashtags' counts (kicau/featured_tags.py), beside the batch's other records.

A public status with hashtags (not a reblog) also goes to the home timelines and streams of the accounts that
follow any of them (kicau/tag_follows.py) and not its author, once each; its deletion is removed from them.

A direct status goes to the timelines and streams of its author and of the accounts it mentions that follow its
author, and nowhere else (kicau/visibility.py).

Nothing reaches an account that blocks or mutes its author (kicau/blocks_and_mutes.py): follower lists come without
those accounts (``FollowGraph.audience``), and the author's hiders are read (through copies kept under the same
versions) for what reaches anyone else: a reblogger's followers who hide the reblogged author, the accounts a direct
status mentions, the followers of its hashtags, the streams of a large account's followers, and notifications. A
block or mute removes the target's statuses from the hider's home timeline. A follow's options (kicau/follow_options.py)
narrow the same way what reaches a follower, and may notify it of its followee's statuses.

Statuses of large accounts are not fanned out: they go to the author's own feed (merged into followers' home
timelines at read time) and one broadcast to every gateway, a constant number of Redis commands whatever the
audience. When an account stops being large, its newest statuses are pushed into its (now bounded) followers'
timelines, so nothing posted while it was large goes missing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeGuard

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from kicau import conversations, instance_usage, keys, resp, retractions, tag_trends
from kicau.account_cards import AccountCards
from kicau.blocks_and_mutes import notification_hiders, status_hiders
from kicau.conversations import Conversation, ConversationChange, ConversationStore
from kicau.entities import compose_status, is_limited_card, is_sensitized_card, is_suspended_card, shown_sensitive
from kicau.events import (
    AccountHidden,
    AccountRegistered,
    AccountScaleChanged,
    AccountWarned,
    Event,
    FollowCreated,
    FollowDeleted,
    FollowRequested,
    FollowRequestSettled,
    PollEnded,
    ReportFiled,
    StatusCreated,
    StatusDeleted,
    StatusEdited,
    StatusFavourited,
    StatusUnfavourited,
)
from kicau.featured_tags import COUNTED, AccountTagUses
from kicau.feeds import Feeds
from kicau.follow_options import FollowOptions, KeptOptions, admitted
from kicau.follower_lists import FollowerLists, KeptUnderVersions
from kicau.ids import ms_from_id
from kicau.large_accounts import LargeAccounts
from kicau.lists import Membership, replied_account, showing_reply
from kicau.metrics import FANOUT_BATCH_SECONDS, FANOUT_ENTRIES, FANOUT_EVENTS, FANOUT_PUBLISH_LAG_SECONDS
from kicau.notification_policies import DEFAULT as DEFAULT_POLICY
from kicau.notification_policies import (
    FILTERABLE,
    Facts,
    Policy,
    PolicyStore,
    Relations,
    needs_facts,
    private_unanswered,
    split,
    verdict,
)
from kicau.notifications import (
    ADMIN_REPORT,
    ADMIN_SIGN_UP,
    FAVOURITE,
    FOLLOW,
    FOLLOW_REQUEST,
    MENTION,
    MODERATION_WARNING,
    POLL,
    QUOTE,
    QUOTED_UPDATE,
    REBLOG,
    STAFF_TYPES,
    STATUS,
    UPDATE,
    Notification,
    NotificationStore,
    UpdateNotices,
    rendered,
)
from kicau.polls import PollVotes
from kicau.presence import PUBLIC_LISTENERS, OnlineMirror
from kicau.public_timeline import PublicStatuses
from kicau.quotes import QuoteStore
from kicau.reblogs import ReblogStore, with_reblog
from kicau.resp import Sender, command
from kicau.settings import CommonSettings
from kicau.staff import Role, StaffStore
from kicau.status_cards import StatusCards, cache_command, tombstone_command
from kicau.stream_events import StreamDelivery, StreamKind, encode_delivery
from kicau.tag_timeline import TaggedStatuses, day_of
from kicau.thread_mutes import ThreadMuteStore, unmuted
from kicau.visibility import DIRECT, PUBLIC, Reader, reaches_followers
from kicau.web_push import NoticeHandOver, PushNotice
from services.fanout.follow_graph import FollowGraph
from services.fanout.settings import FanoutSettings

# The (timeline, author) pairs grouped at once: past this, a run is grouped in parts (authors in run order), so
# a fanout catching up on thousands of authors holds a bounded map (~100 bytes a pair), as it streamed before.
MAX_GROUPED_PAIRS = 200_000


def timeline_groups(run: dict[int, list[int]], followers: dict[int, list[int]],
                    max_pairs: int = MAX_GROUPED_PAIRS) -> Iterator[tuple[list[int], list[int]]]:
    """The timelines a run of new statuses goes to, grouped by the statuses each receives: ``(recipients,
    status ids)``. ``run`` maps each author to its statuses in the run; an author receives its own.

    Why by timeline and not by author: a batch interleaves authors (statuses 104 and 106 of one, 105 of
    another), and pushed author after author, 105 would reach every shared follower after 106, older than the
    head: the push script's out-of-order path, ~2.5 times the cost of a push on the head (services/fanout/README.md).
    In the delivery bench that path took 20-60% of the pushes at 25 posts/s. Grouped, a timeline receives the
    run's statuses it is due in one call, oldest first, in one LPUSH; only a status that arrives in a later batch
    than a newer one still takes that path. Followers of the same authors share a group (and its packed
    arguments), so the common cases cost no more calls than before: one author, or followers of them all."""
    if len(run) == 1:
        ((author, status_ids),) = run.items()
        yield [author, *followers[author]], status_ids
        return
    receives: dict[int, list[int]] = {}  # recipient -> the run's authors it receives, in run order
    pairs = 0
    for author in run:
        if pairs and pairs + 1 + len(followers[author]) > max_pairs:
            yield from _grouped(receives, run)
            receives, pairs = {}, 0
        pairs += 1 + len(followers[author])
        receives.setdefault(author, []).append(author)
        for follower in followers[author]:
            authors = receives.get(follower)
            if authors is None:
                receives[follower] = [author]
            else:
                authors.append(author)
    yield from _grouped(receives, run)


def _grouped(receives: dict[int, list[int]], run: dict[int, list[int]]) -> Iterator[tuple[list[int], list[int]]]:
    groups: dict[tuple[int, ...], list[int]] = {}
    for recipient, authors in receives.items():
        groups.setdefault(tuple(authors), []).append(recipient)
    for group, recipients in groups.items():
        yield recipients, [status for author in group for status in run[author]]


def _addressees(event: StatusCreated, addressed: dict[int, list[int]]) -> list[int]:
    """Whose timelines and streams a direct status goes to: its author's, and those of the accounts it mentions
    that follow its author (read when its batch is applied)."""
    return addressed.get(event.status_id, [event.account_id])


def notifications_of(events: Sequence[Event]) -> list[Notification]:
    """What the batch's events notify (kicau/notifications.py): each account a new status mentions, or an edit
    adds a mention of, other than its author; the followee of each new follow; the author of each newly favourited
    or reblogged status, unless it favourites or reblogs its own."""
    found: list[Notification] = []
    for event in events:
        if isinstance(event, StatusCreated | StatusEdited):
            # An edit notifies the accounts it adds a mention of; the notification is the status's mention (its id
            # the status's), so an account mentioned, dropped and mentioned again has the one notification.
            mentioned = event.mentions if isinstance(event, StatusCreated) else event.mentions_added
            found += [Notification(account, event.status_id, MENTION, event.account_id, event.status_id)
                      for account in dict.fromkeys(mentioned) if account != event.account_id]
        elif isinstance(event, FollowCreated) and event.notification_id:
            found.append(Notification(event.followee_id, event.notification_id, FOLLOW, event.follower_id))
        elif isinstance(event, FollowRequested):
            found.append(Notification(event.target_id, event.request_id, FOLLOW_REQUEST, event.requester_id))
        elif isinstance(event, StatusFavourited) and event.author_id != event.account_id:
            found.append(Notification(event.author_id, event.favourite_id, FAVOURITE, event.account_id,
                                      event.status_id))
        if isinstance(event, StatusCreated) and event.reblog_of and event.reblog_author != event.account_id:
            found.append(Notification(event.reblog_author, event.status_id, REBLOG, event.account_id,
                                      event.reblog_of))
        # A quote tells the quoted status's author (kicau/quotes.py), apart from any mention of it, as Mastodon
        # does; by an older event without a notification id of its own, only when it does not mention it (the
        # mention's id is the status's too).
        if isinstance(event, StatusCreated) and event.quoted_account and event.quoted_account != event.account_id \
                and (event.quote_notification_id or event.quoted_account not in event.mentions):
            found.append(Notification(event.quoted_account, event.quote_notification_id or event.status_id, QUOTE,
                                      event.account_id, event.status_id))
    return found


def staff_notifications(events: Sequence[Event], staff: Mapping[int, Role]) -> list[Notification]:
    """What the staff are told of (kicau/notifications.py ``STAFF_TYPES``): each sign-up, told to every staff
    account that may manage accounts, and each report, to every one that may manage reports, but never to the
    account that signed up or reported (Mastodon tells no one of its own act)."""
    found: list[Notification] = []
    for event in events:
        if isinstance(event, AccountRegistered):
            kind, about, told_by = ADMIN_SIGN_UP, event.account_id, event.account_id
        elif isinstance(event, ReportFiled):
            kind, about, told_by = ADMIN_REPORT, event.report_id, event.account_id
        else:
            continue
        found += [Notification(account, about, kind, told_by) for account, role in sorted(staff.items())
                  if account != told_by and role.can(STAFF_TYPES[kind])]
    return found


def warning_notifications(events: Sequence[Event]) -> list[Notification]:
    """A ``moderation_warning`` for each account warned (kicau/account_warnings.py), from itself, as Mastodon's."""
    return [Notification(e.account_id, e.warning_id, MODERATION_WARNING, e.account_id)
            for e in events if isinstance(e, AccountWarned)]


def _as_streamed(fragment: bytes, card: bytes) -> bytes:
    """A status as its stream event shows it to every reader: sensitive if staff marked its author so (the author's
    own streams too: the event is rendered once for all of them, as Mastodon's is)."""
    return shown_sensitive(fragment) if is_sensitized_card(card) else fragment


def to_available(notices: Sequence[Notification], cards: Mapping[int, bytes]) -> list[Notification]:
    """The notices but those to a suspended account (its card, in ``cards``, says so): Mastodon drops every
    notification to an account that is unavailable, of any kind (the warning of its own suspension too: the staff
    keep the warning itself), so none is recorded, streamed or pushed while it is suspended, and none shows after."""
    return [n for n in notices if not ((card := cards.get(n.account_id)) is not None and is_suspended_card(card))]


def accepted_times(events: Iterable[Event]) -> dict[int, float]:
    """When each notification's event was accepted (wall-clock ms), by notification id (a mention's is its
    status's)."""
    accepted: dict[int, float] = {}
    for event in events:
        if isinstance(event, StatusCreated):
            accepted[event.status_id] = event.occurred_at
            for notice_id in (event.quote_notification_id, event.status_notification_id):
                if notice_id:
                    accepted[notice_id] = event.occurred_at
        elif isinstance(event, FollowCreated | PollEnded):
            accepted[event.notification_id] = event.occurred_at
        elif isinstance(event, StatusFavourited):
            accepted[event.favourite_id] = event.occurred_at
        elif isinstance(event, StatusEdited):
            accepted[event.version_id] = event.occurred_at
            if event.quoted_update_id:
                accepted[event.quoted_update_id] = event.occurred_at
        elif isinstance(event, FollowRequested):
            accepted[event.request_id] = event.occurred_at
        elif isinstance(event, AccountRegistered):
            accepted[event.account_id] = event.occurred_at
        elif isinstance(event, ReportFiled):
            accepted[event.report_id] = event.occurred_at
        elif isinstance(event, AccountWarned):
            accepted[event.warning_id] = event.occurred_at
    return accepted


def update_notifications(edits: Sequence[StatusEdited], boosters: Sequence[list[int]],
                         quoters: Sequence[list[tuple[int, int]]] = ()) -> list[Notification]:
    """An ``update`` for each account that reblogged an edited status (``boosters``, each edit's), as Mastodon
    notifies an edit, and a ``quoted_update`` for each account that quotes it (``quoters``: each edit's quoting
    statuses and their authors), naming its quote (its newest, for one that quotes it twice); never the author
    itself. The ``update``'s id is the edit's version, the ``quoted_update``'s the event's ``quoted_update_id``: an
    account that both reblogged and quotes the status is told both (by an older event without that id, the
    ``update`` alone)."""
    found: list[Notification] = []
    for edit, accounts, quoting in zip(edits, boosters, quoters or [[] for _ in edits], strict=True):
        told = {account for account in accounts if account != edit.account_id}
        found += [Notification(account, edit.version_id, UPDATE, edit.account_id, edit.status_id)
                  for account in dict.fromkeys(accounts) if account in told]
        shared_id = not edit.quoted_update_id
        newest: dict[int, int] = {}
        for quote_id, account in quoting:
            if account != edit.account_id and not (shared_id and account in told):
                newest[account] = max(quote_id, newest.get(account, 0))
        found += [Notification(account, edit.quoted_update_id or edit.version_id, QUOTED_UPDATE, edit.account_id,
                               quote_id)
                  for account, quote_id in newest.items()]
    return found


def poll_notifications(endings: Sequence[PollEnded], voters: Sequence[list[int]]) -> list[Notification]:
    """A ``poll`` notification for the author of each poll that ended and for everyone who voted in it, as
    Mastodon notifies them; its id is the end's (published again: the same notification)."""
    return [Notification(account, ended.notification_id, POLL, ended.account_id, ended.status_id)
            for ended, accounts in zip(endings, voters, strict=True)
            for account in dict.fromkeys([ended.account_id, *accounts])]


def hiders_wanted(events: Sequence[Event], notices: Sequence[Notification], large: set[int]) -> list[int]:
    """The authors whose hiders a batch must know beyond its follower lists (which come without them): the
    authors of reblogged statuses, of direct statuses that mention anyone, of public statuses with hashtags
    (their followers may hide the author), of large accounts' statuses (streamed to their followers by
    broadcast), whoever caused a notification, and the followee of each follow (its backfill skips a follower that
    hides it)."""
    wanted = {n.from_account_id for n in notices}
    for event in events:
        if isinstance(event, FollowCreated):
            wanted.add(event.followee_id)
        if isinstance(event, StatusCreated) and event.reblog_of:
            wanted.add(event.reblog_author)
        if isinstance(event, StatusCreated | StatusDeleted | StatusEdited) and (
                event.account_id in large or event.tags
                or (event.mentions and not reaches_followers(event.visibility))):
            wanted.add(event.account_id)
    return sorted(wanted)


def narrowed_audiences(events: Sequence[Event], followers: dict[int, list[int]], hidden: dict[int, set[int]],
                       options: Mapping[int, Mapping[int, FollowOptions]]) -> dict[int, list[int]]:
    """Who receives each status that some of its author's followers must not, as Mastodon keeps them out of home
    timelines: for a reblog, the followers who block or mute the reblogged author (``hidden``) and those whose
    follow hides the reblogger's reblogs; for any status, those whose follow names other languages (``options``,
    kicau/follow_options.py). Only such statuses are listed: ``{status id: [author, *its other followers]}``."""
    narrowed: dict[int, list[int]] = {}
    for event in events:
        if not (isinstance(event, StatusCreated) and event.account_id in followers
                and reaches_followers(event.visibility)):
            continue
        excluded = set(hidden.get(event.reblog_author, ())) if event.reblog_of else set()
        chosen = options.get(event.account_id)
        if chosen:
            excluded.update(follower for follower, option in chosen.items()
                            if (event.reblog_of and not option.reblogs) or not option.takes(event.language))
        audience = followers[event.account_id]
        if excluded and not excluded.isdisjoint(audience):
            narrowed[event.status_id] = [event.account_id, *(f for f in audience if f not in excluded)]
    return narrowed


def statuses_counted(events: Sequence[Event]) -> int:
    """How a batch moves the instance's count of statuses (kicau/instance_usage.py): its statuses posted less
    those deleted, direct ones left out, as Mastodon counts them."""
    return sum(1 if isinstance(e, StatusCreated) else -1 for e in events
               if isinstance(e, StatusCreated | StatusDeleted) and reaches_followers(e.visibility))


def daily_activity(events: Sequence[Event]) -> tuple[list[tuple[int, int]], list[int], list[tuple[int, str]]]:
    """What a batch adds to each day's activity (kicau/instance_usage.py): (day, account) of each status posted,
    the day of each interaction (a favourite, a reblog or a reply of another account's status), and (day,
    language) of each status that names its language, reblogs left out."""
    posters: list[tuple[int, int]] = []
    interactions: list[int] = []
    languages: list[tuple[int, str]] = []
    for event in events:
        if isinstance(event, StatusCreated):
            day = day_of(event.status_id)
            posters.append((day, event.account_id))
            if event.language and not event.reblog_of:
                languages.append((day, event.language))
            if (event.reblog_of and event.reblog_author != event.account_id) or \
                    event.in_reply_to_account not in (0, event.account_id):
                interactions.append(day)
        elif isinstance(event, StatusFavourited) and event.author_id != event.account_id:
            interactions.append(day_of(event.favourite_id))
    return posters, interactions, languages


def notifies_followers(event: Event) -> TypeGuard[StatusCreated]:
    """Whether a status may bring ``status`` notifications to followers that asked for them: a new status, neither
    a reblog nor a reply to someone else, that reaches its author's followers, or a direct one (to the followers it
    mentions, as Mastodon's fanout puts it in their home feeds and its feed worker notifies whatever the
    visibility)."""
    return (isinstance(event, StatusCreated) and not event.reblog_of
            and event.in_reply_to_account in (0, event.account_id)
            and (reaches_followers(event.visibility) or event.visibility == DIRECT))


def notified_from_options(event: Event, large: bool) -> TypeGuard[StatusCreated]:
    """Whether a status's ``status`` notifications are found from its author's options alone, its followers not
    read whole: a large author's (its followers are never read) and a direct status (its audience is the
    followers it mentions, not the follower list)."""
    return notifies_followers(event) and (large or event.visibility == DIRECT)


def status_notifications(events: Sequence[Event], followers: dict[int, list[int]],
                         options: Mapping[int, Mapping[int, FollowOptions]], narrowed: dict[int, list[int]],
                         large: Mapping[int, set[int]] | None = None) -> list[Notification]:
    """The ``status`` notifications of a batch: for each status that ``notifies_followers``, each follower that
    follows its author with ``notify`` and receives it; one the status also mentions is told of both, the
    ``status`` under ``StatusCreated.status_notification_id`` (by an event without one, of the mention alone).

    A status posted while its author was large is not fanned out and its followers are never read whole; nor is a
    direct status's author's list (``notified_from_options``). For those (``large``: each such status's author's
    followers that hide it or its notifications), the receivers among those asking to be notified are those its
    author's options name (every follow with options of its own has a row, kicau/follow_options.py) whose
    languages take it and who do not hide the author; of a direct status, only those it mentions. The work is that
    of the notifications themselves, not of the follower count."""
    found: list[Notification] = []
    for event in events:
        if not notifies_followers(event):
            continue
        chosen = options.get(event.account_id)
        notified = [follower for follower, option in chosen.items() if option.notify] if chosen else []
        if event.visibility == DIRECT:
            notified = [follower for follower in notified if follower in event.mentions]
            if large is None or event.status_id not in large:
                continue  # its receivers are known only through ``large``
        if not notified:
            continue
        if large is not None and event.status_id in large:
            hiding = large[event.status_id]
            receivers = {f for f in notified if f not in hiding and options[event.account_id][f].takes(event.language)}
        else:
            receivers = set(narrowed.get(event.status_id, followers.get(event.account_id, ())))
        # Under an id of its own, beside the mention of a follower the status mentions; by an older event (the
        # mention's id and the status notification's were the same), the mention alone.
        notice_id = event.status_notification_id or event.status_id
        mentioned = set() if event.status_notification_id else set(event.mentions)
        found += [Notification(follower, notice_id, STATUS, event.account_id, event.status_id)
                  for follower in notified if follower in receivers and follower not in mentioned]
    return found


def list_audiences(events: Sequence[Event], followers: dict[int, list[int]], narrowed: dict[int, list[int]],
                   memberships: Mapping[int, list[Membership]]) -> dict[int, list[Membership]]:
    """The lists each status of the batch goes to (kicau/lists.py): for a new status that reaches its author's
    followers, the author's lists whose owners it reaches (``narrowed``, else every follower: the owner's blocks,
    mutes and follow options apply to its lists as to its home timeline); for a deleted one, every list of its
    author, as for an edited one (its ``status.update``). A large author's statuses are merged into lists at read
    time, as into home timelines."""
    found: dict[int, list[Membership]] = {}
    reached: dict[int, set[int]] = {}  # each author's followers, made a set once a batch
    for event in events:
        if not isinstance(event, StatusCreated | StatusDeleted | StatusEdited) or event.account_id not in followers:
            continue
        lists = memberships.get(event.account_id)
        if not lists:
            continue
        if isinstance(event, StatusDeleted | StatusEdited):
            found[event.status_id] = lists
            continue
        if not reaches_followers(event.visibility):
            continue
        if event.status_id in narrowed:
            receivers = set(narrowed[event.status_id])
        else:
            receivers = reached.setdefault(event.account_id, set(followers[event.account_id]))
        chosen = [m for m in lists if m.owner_id in receivers]
        if chosen:
            found[event.status_id] = chosen
    return found


def exclusive_narrowed(events: Sequence[Event], followers: dict[int, list[int]], narrowed: dict[int, list[int]],
                       memberships: Mapping[int, list[Membership]]) -> dict[int, list[int]]:
    """Who receives each new status that the owner of an exclusive list holding its author must not get in its
    home timeline and user stream (kicau/lists.py): its audience (``narrowed``, else the author and every
    follower) without those owners. Only such statuses are listed."""
    changed: dict[int, list[int]] = {}
    for event in events:
        if not (isinstance(event, StatusCreated) and event.account_id in followers
                and reaches_followers(event.visibility)):
            continue
        apart = {m.owner_id for m in memberships.get(event.account_id, ()) if m.exclusive}
        if not apart:
            continue
        audience = narrowed.get(event.status_id) or [event.account_id, *followers[event.account_id]]
        if not apart.isdisjoint(audience):
            changed[event.status_id] = [a for a in audience if a not in apart]
    return changed


def notifications_removed(events: Sequence[Event]) -> list[tuple[int, int]]:
    """The (account, notification id) of each mention a deleted status had made, of each favourite or reblog
    given back, and of each follow request that ended."""
    removed: list[tuple[int, int]] = []
    for event in events:
        if isinstance(event, StatusDeleted):
            removed += [(mentioned, event.status_id) for mentioned in dict.fromkeys(event.mentions)
                        if mentioned != event.account_id]
            if event.reblog_of and event.reblog_author != event.account_id:
                removed.append((event.reblog_author, event.status_id))
        elif isinstance(event, StatusUnfavourited) and event.author_id != event.account_id:
            removed.append((event.author_id, event.favourite_id))
        elif isinstance(event, FollowRequestSettled):
            removed.append((event.target_id, event.request_id))
    return removed


def public_changes(events: Sequence[Event]) -> tuple[list[int], list[int]]:
    """The public statuses the batch adds to the public timeline's record and those it removes. One posted and
    deleted in the same batch is neither (its two writes would race). Reblogs are in neither, as on Mastodon's
    public timelines."""
    deleted = [e.status_id for e in events
               if isinstance(e, StatusDeleted) and e.visibility == PUBLIC and not e.reblog_of]
    gone = set(deleted)
    return ([e.status_id for e in events
             if isinstance(e, StatusCreated) and e.visibility == PUBLIC and not e.reblog_of
             and e.status_id not in gone],
            [status_id for status_id in deleted
             if not any(isinstance(e, StatusCreated) and e.status_id == status_id for e in events)])


def tag_changes(events: Sequence[Event], added: list[int], removed: list[int],
                ) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """The (hashtag, status id) pairs the batch lists on hashtag timelines and those it unlists: the public
    statuses the batch adds and removes (``public_changes``), each with its hashtags."""
    if not added and not removed:
        return [], []
    tags = {e.status_id: e.tags for e in events if isinstance(e, (StatusCreated, StatusDeleted)) and e.tags}
    return ([(tag, status_id) for status_id in added for tag in tags.get(status_id, ())],
            [(tag, status_id) for status_id in removed for tag in tags.get(status_id, ())])


PUBLIC_ONLY = frozenset({PUBLIC})


def stream_tags(event: StatusCreated | StatusDeleted | StatusEdited) -> list[str]:
    """The hashtags whose streams and followers an event goes to: an edit's goes to those of both versions (the
    followers of a hashtag the edit removed had the status too)."""
    if isinstance(event, StatusEdited):
        return [*event.tags, *(tag for tag in event.tags_before if tag not in event.tags)]
    return event.tags


def edited_tags(events: Sequence[Event], listed: list[tuple[Any, ...]], unlisted: list[tuple[Any, ...]],
                visibilities: frozenset[str], account: bool = False,
                ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """``listed`` and ``unlisted`` (hashtag timeline or featured-hashtag changes of the batch's new and deleted
    statuses) with its edits applied after them, in order: an edit of a status of one of ``visibilities`` lists
    it under the hashtags it added and unlists it from those it dropped. Each pair (or triple, with the author
    first when ``account``) ends in one of the two lists at most, as its last change left it."""
    edits = [e for e in events if isinstance(e, StatusEdited) and e.visibility in visibilities
             and e.tags != e.tags_before]
    if not edits:
        return listed, unlisted
    state = {**dict.fromkeys(listed, True), **dict.fromkeys(unlisted, False)}
    for e in edits:
        def key(tag: str, e: StatusEdited = e) -> tuple[Any, ...]:
            return (e.account_id, tag, e.status_id) if account else (tag, e.status_id)
        for tag in e.tags_before:
            if tag not in e.tags:
                state[key(tag)] = False
        for tag in e.tags:
            if tag not in e.tags_before:
                state[key(tag)] = True
    return [k for k, v in state.items() if v], [k for k, v in state.items() if not v]


def account_tag_changes(events: Sequence[Event]) -> tuple[list[tuple[int, str, int]], list[tuple[int, str, int]]]:
    """The (account, hashtag, status id) uses the batch records for featured hashtags (kicau/featured_tags.py) and
    those it removes: public and unlisted statuses with hashtags, no reblogs. One posted and deleted in the same
    batch is neither (its two writes would race)."""
    counted = [e for e in events if isinstance(e, StatusCreated | StatusDeleted) and e.tags
               and e.visibility in COUNTED and not e.reblog_of]
    if not counted:
        return [], []
    created = {e.status_id for e in counted if isinstance(e, StatusCreated)}
    both = created & {e.status_id for e in counted if isinstance(e, StatusDeleted)}
    uses = [(e, (e.account_id, tag, e.status_id)) for e in counted if e.status_id not in both for tag in e.tags]
    return ([use for e, use in uses if isinstance(e, StatusCreated)],
            [use for e, use in uses if isinstance(e, StatusDeleted)])


def tag_followed(events: Sequence[Event]) -> list[StatusCreated | StatusDeleted | StatusEdited]:
    """The batch's statuses (and deletions, and edits) that go to their hashtags' followers: public ones, not
    reblogs, as Mastodon's fanout delivers to hashtag followers."""
    return [e for e in events if isinstance(e, StatusCreated | StatusDeleted | StatusEdited) and stream_tags(e)
            and e.visibility == PUBLIC and not (isinstance(e, StatusCreated | StatusDeleted) and e.reblog_of)]


def tag_audiences(statuses: Sequence[StatusCreated | StatusDeleted | StatusEdited],
                  tag_followers: dict[str, list[int]],
                  reached: dict[int, list[int]], hidden: dict[int, set[int]] | None = None) -> dict[int, list[int]]:
    """For each status id, the followers of its hashtags that its author's audience does not already reach:
    not its author, nor any of ``reached[author]`` (the author's followers, when they are known), nor any of
    ``hidden[author]`` (who blocks or mutes it). In the order first met, each once."""
    audiences: dict[int, list[int]] = {}
    hidden = hidden or {}
    for event in statuses:
        excluded = {event.account_id, *reached.get(event.account_id, ()), *hidden.get(event.account_id, ())}
        audience = [a for a in dict.fromkeys(a for tag in stream_tags(event) for a in tag_followers.get(tag, ()))
                    if a not in excluded]
        if audience:
            audiences[event.status_id] = audience
    return audiences


@dataclass
class _Plan:
    """How one event is applied, decided in stream order before anything is written: whether its author was
    large at that point decides both its stream delivery and its timeline writes."""

    event: Event
    large: bool


@dataclass
class _Audiences:
    """Who receives the batch's statuses, decided before anything is written."""

    followers: dict[int, list[int]]  # each author's followers, without those that hide it
    addressed: dict[int, list[int]]  # a direct status's: its author and the followers it mentions (``_addressees``)
    by_tags: dict[int, list[int]]  # a public status's other receivers: its hashtags' followers (``tag_audiences``)
    narrowed: dict[int, list[int]]  # a status some followers must not get: who gets it (``narrowed_audiences``)
    hidden: dict[int, set[int]]  # who hides an author (a large account's broadcast names them)
    backfills: dict[tuple[int, int], list[int]]  # what each new (follower, followee) follow backfills
    lists: dict[int, list[Membership]]  # the lists each status goes to (``list_audiences``)
    # Of those, the lists whose streams are sent each new or edited status: a reply to someone else only where the
    # list's replies policy shows it (``Fanout._lists_streamed``); the timelines take it all the same, pages apply it.
    list_streams: dict[int, list[Membership]]


@dataclass
class Fanout:
    settings: CommonSettings
    own: FanoutSettings
    redis: Redis
    feeds: Feeds
    graph: FollowGraph
    follower_lists: FollowerLists[int]
    accounts: AccountCards
    online: OnlineMirror
    large: LargeAccounts
    notifications: NotificationStore
    public: PublicStatuses
    tagged: TaggedStatuses
    tag_followers: FollowerLists[str]  # of hashtags (kicau/tag_follows.py)
    tag_uses: AccountTagUses
    hiders: FollowerLists[int]  # who blocks or mutes an author (kicau/blocks_and_mutes.py), encoded
    follow_options: KeptOptions  # followers' options of each author, under its follower list's version
    list_memberships: KeptUnderVersions[list[Membership]]  # the lists each author is in, kept the same way
    reblogs: ReblogStore  # who reblogs an edited status (notified of the edit)
    update_notices: UpdateNotices  # the update each edit's replaces
    quotes: QuoteStore  # who quotes an edited status (notified too)
    # A status as one reader sees it, for a notification whose status no event of the batch carries (the quote a
    # ``quoted_update`` names, shown with the edited status in it).
    statuses: StatusCards
    conversations: ConversationStore  # the direct conversations of direct statuses' authors and mentioned accounts
    thread_mutes: ThreadMuteStore  # the threads accounts mute: nothing in them notifies them
    poll_votes: PollVotes  # who voted in a poll that ended (notified of its end)
    policies: PolicyStore  # what notified accounts hold back from strangers (kicau/notification_policies.py)
    relations: Relations  # the follows those policies ask about
    filtered: NotificationStore  # the notifications held back
    staff: StaffStore  # who is told of sign-ups and reports (kicau/staff.py)
    # Where the batch's accepted notifications go for web push (kicau/web_push.py); None: no push service.
    pushes: NoticeHandOver | None = None

    async def apply(self, events: Sequence[Event]) -> int:
        """Apply events in order; returns the number of home-timeline entries written."""
        started = time.perf_counter()
        cap = self.settings.home_timeline_cap
        large = set(await self.large.current())
        # Whether an author is large is decided in stream order: a scale change seen in this batch applies to
        # the author's statuses after it, exactly as it will on a replay.
        needs_followers: set[int] = set()
        plans: list[_Plan] = []
        scale = set(large)
        for event in events:
            if isinstance(event, AccountScaleChanged):
                scale = scale | {event.account_id} if event.large else scale - {event.account_id}
                if not event.large:
                    needs_followers.add(event.account_id)
                plans.append(_Plan(event, event.large))
            elif isinstance(event, StatusCreated | StatusDeleted | StatusEdited):
                if event.account_id not in scale:
                    needs_followers.add(event.account_id)
                plans.append(_Plan(event, event.account_id in scale))
            else:
                plans.append(_Plan(event, False))
        followees = ({e.followee_id for e in events if isinstance(e, FollowCreated | FollowDeleted)}
                     | {e.target_id for e in events if isinstance(e, AccountHidden)})
        backfilled = {e.account_id for e in events if isinstance(e, AccountScaleChanged) and not e.large}
        follower_ids, recent_ids = sorted(needs_followers), sorted(followees | backfilled)
        direct = [e for e in events
                  if isinstance(e, StatusCreated) and not reaches_followers(e.visibility) and e.mentions]
        hashtagged = tag_followed(events)
        removed = notifications_removed(events)
        # A status deleted in the same batch as it was posted notifies no one, nor does a favourite given back in
        # the batch that made it (and their rows are not raced by their removal).
        gone = {e.status_id for e in events if isinstance(e, StatusDeleted)}
        taken_back = set(removed)
        notices = [n for n in notifications_of(events)
                   if n.status_id not in gone and (n.account_id, n.id) not in taken_back]
        edits = [e for e in events if isinstance(e, StatusEdited) and e.notifies and e.status_id not in gone]
        if edits:  # rare: a read of each edited status's reblogs and quotes
            boosters, quoters = await asyncio.gather(
                asyncio.gather(*(self.reblogs.boosters(e.status_id) for e in edits)),
                asyncio.gather(*(self.quotes.quoters(e.status_id) for e in edits)))
            notices += update_notifications(edits, boosters, quoters)
            # An update replaced by a later edit of the same batch is never recorded (a row both recorded and
            # removed in one call would race).
            replaced = await self._updates_replaced(edits, boosters)
            superseded = set(replaced) & {(n.account_id, n.id) for n in notices}
            notices = [n for n in notices if (n.account_id, n.id) not in superseded]
            removed += [pair for pair in replaced if pair not in superseded]
        if any(isinstance(e, AccountRegistered | ReportFiled) for e in events):  # rare: a read of the few staff
            notices += staff_notifications(events, await self.staff.every())
        notices += warning_notifications(events)
        endings = [e for e in events if isinstance(e, PollEnded) and e.status_id not in gone]
        if endings:  # rare: a read of each ended poll's voters
            notices += poll_notifications(endings, await asyncio.gather(*(self.poll_votes.voters(e.status_id)
                                                                          for e in endings)))
        follows = [e for e in events if isinstance(e, FollowCreated)]
        (follower_lists, status_lists, mentioned_followers, tag_followers, hider_lists,
         ((follows_options, policies), parties)) = await asyncio.gather(
            self.follower_lists.followers(follower_ids),
            asyncio.gather(*(self.graph.newest_statuses(f, max(cap, self.settings.follow_backfill))
                             for f in recent_ids)),
            asyncio.gather(*(self.graph.followers_among(e.account_id, [m for m in e.mentions if m != e.account_id])
                             for e in direct)),
            self.tag_followers.followers(sorted({t for e in hashtagged for t in stream_tags(e)})),
            self.hiders.followers(hiders_wanted(events, notices, scale | large)),
            asyncio.gather(self._options_and_policies(follows, notices), self._cards_of_parties(notices)),
        )
        followers = follower_lists
        hidden = {author: status_hiders(encoded) for author, encoded in hider_lists.items() if encoded}
        silenced = {author: notification_hiders(encoded) for author, encoded in hider_lists.items() if encoded}
        notices = to_available([n for n in notices if n.account_id not in silenced.get(n.from_account_id, ())],
                               parties)
        notices, held = await self._policed(events, notices, policies, parties)
        # The conversations of direct statuses: their authors' and those of the accounts notified of them.
        joining, leaving = conversations.joined(events, notices), conversations.left(events)
        by_tags = await self._tag_audiences(plans, hashtagged, tag_followers, followers, hidden)
        recent_entries = dict(zip(recent_ids, status_lists, strict=True))
        recent = {author: [entry.status_id for entry in entries] for author, entries in recent_entries.items()}
        # Nothing for a follower that blocks or mutes the followee (Mastodon's merge filters it so); otherwise what
        # the follow's options let in.
        backfill = self.settings.follow_backfill
        backfills = {(e.follower_id, e.followee_id):
                     [] if e.follower_id in hidden.get(e.followee_id, ())
                     else admitted(recent_entries[e.followee_id][:backfill], option)
                     for e, option in zip(follows, follows_options, strict=True)}
        addressed = {e.status_id: [e.account_id, *(m for m in among if m not in hidden.get(e.account_id, ()))]
                     for e, among in zip(direct, mentioned_followers, strict=True)}
        # The followers' options of the authors whose lists were just claimed (kicau/follow_options.py), and the
        # lists those authors are in (kicau/lists.py): read from Cassandra only for a list whose version changed.
        # Of a large author that posted a status that may notify, and of a direct status's author, only the
        # options: under its list's version, claimed without reading the list.
        from_options = {p.event.status_id: p.event.account_id for p in plans
                        if notified_from_options(p.event, p.large) and p.event.status_id not in gone}
        options, memberships, notifying_options = await asyncio.gather(
            self.follow_options.options(self.follower_lists.claimed),
            self.list_memberships.of(self.follower_lists.claimed),
            self._notifying_options(sorted(set(from_options.values()))))
        narrowed = narrowed_audiences(events, followers, hidden, options)
        hiding = {status_id: hidden.get(author, set()) | silenced.get(author, set())
                  for status_id, author in from_options.items()}
        told = [n for n in status_notifications(events, followers, {**notifying_options, **options}, narrowed, hiding)
                if n.status_id not in gone]
        if told:  # only followers that asked to be told of their followees' statuses: their cards, if not read yet
            parties.update(await self.accounts.cards({n.account_id for n in told} - parties.keys()))
            notices += to_available(told, parties)
        notices = await self._unmuted(events, notices)
        if held:
            held = await self._unmuted(events, held)
        lists = list_audiences(events, followers, narrowed, memberships)
        narrowed.update(exclusive_narrowed(events, followers, narrowed, memberships))
        audiences = _Audiences(followers, addressed, by_tags, narrowed, hidden, backfills, lists,
                               await self._lists_streamed(events, lists))
        published, unpublished = public_changes(events)
        tagged, untagged = edited_tags(events, *tag_changes(events, published, unpublished), PUBLIC_ONLY)
        used, unused = edited_tags(events, *account_tag_changes(events), COUNTED, account=True)
        # What a stream announces is listed by the time a client asks for it (Mastodon saves a notification
        # before it streams it): the notifications and conversations are recorded before any delivery carrying
        # one goes out. Deliveries of statuses alone do not wait for them.
        listed: list[Awaitable[object]] = []
        if notices or removed:
            listed.append(self.notifications.apply(notices, removed))
        if held or removed:  # a removal may be of a notification held back
            listed.append(self.filtered.apply(held, removed))
        if joining or leaving:
            listed.append(self.conversations.apply(joining, leaving))
        retracted = [retractions.of_event(e) for e in events if isinstance(e, StatusDeleted | StatusEdited)]
        if retracted:
            # Logged before any delivery or timeline write of the batch: a stream resuming once its timeline no
            # longer holds a deleted status finds the deletion in the log (kicau/retractions.py).
            await resp.round_trip(self.redis, retractions.append_commands(
                retracted, int(time.time() * 1000), self.settings.retraction_log_hours * 3_600_000))
        listing = asyncio.ensure_future(asyncio.gather(*listed)) if listed else None
        try:
            await self._deliver_all(plans, audiences, large, notices, joining, listing, parties)
        except BaseException:
            if listing is not None:  # retrieved, so a failed write is not also reported as never awaited
                await asyncio.gather(listing, return_exceptions=True)
            raise
        # Cassandra's other records of the batch (and the hashtags' counts), written beside its Redis writes
        records: list[Awaitable[object]] = [listing] if listing is not None else []
        if published or unpublished:
            records.append(self._publish(published, unpublished))
        if tagged or untagged:
            records.append(self.tagged.apply(tagged, untagged))
        if used or unused:
            records.append(self.tag_uses.apply(used, unused))
        if notices and self.pushes is not None:
            # Handed to the push service (services/push/) before the batch's offsets are committed, so a crash
            # hands them over again (the push service pushes each notification once).
            accepted = accepted_times(events)
            records.append(self.pushes.hand_over(
                PushNotice(account_id=n.account_id, notification_id=n.id, type=n.type,
                           from_account_id=n.from_account_id, status_id=n.status_id,
                           occurred_at=accepted.get(n.id, 0.0)) for n in notices))
        if tagged:
            # Their hashtags' recent use (kicau/tag_history.py) and trends (kicau/tag_trends.py): counts of
            # distinct members, safe to repeat.
            authors = {e.status_id: e.account_id for e in events if isinstance(e, StatusCreated | StatusEdited)}
            records.append(tag_trends.count_uses(
                self.redis, ((tag, status_id, authors[status_id]) for tag, status_id in tagged)))
        if records:
            writing = asyncio.ensure_future(self._write_all(plans, audiences, recent))
            await asyncio.gather(writing, *records)
            entries = writing.result()
        else:  # no task for nothing
            entries = await self._write_all(plans, audiences, recent)
        FANOUT_ENTRIES.inc(entries)
        FANOUT_BATCH_SECONDS.observe(time.perf_counter() - started)
        return entries

    async def _unmuted(self, events: Sequence[Event], notices: list[Notification]) -> list[Notification]:
        """The notices but those about a status in a thread their account mutes (kicau/thread_mutes.py), as
        Mastodon drops them. One read of the notified accounts' muted threads; the roots of the statuses they are
        about, beyond the batch's new ones, only for an account that mutes any."""
        muted = await self.thread_mutes.muted_by({n.account_id for n in notices if n.status_id})
        if not muted:
            return notices
        roots = {e.status_id: e.conversation_id or e.status_id for e in events if isinstance(e, StatusCreated)}
        roots.update(await self.thread_mutes.roots_of({n.status_id for n in notices if n.status_id
                                                       and n.account_id in muted and n.status_id not in roots}))
        return unmuted(notices, muted, roots)

    async def _options_and_policies(self, follows: Sequence[FollowCreated], notices: Sequence[Notification],
                                    ) -> tuple[list[FollowOptions], dict[int, Policy]]:
        """Each follow's own options, for its backfill (a follow is rare beside statuses: a read each), and the
        notified accounts' policies (kicau/notification_policies.py: one read, if anything may be held back)."""
        return await asyncio.gather(
            asyncio.gather(*(self.follow_options.store.of_follow(e.follower_id, e.followee_id) for e in follows)),
            self.policies.of({n.account_id for n in notices if n.type in FILTERABLE}))

    async def _policed(self, events: Sequence[Event], notices: list[Notification], policies: dict[int, Policy],
                       parties: Mapping[int, bytes]) -> tuple[list[Notification], list[Notification]]:
        """The notices accepted and those held back by their accounts' policies (kicau/notification_policies.py);
        the dropped are in neither. Follows and permissions are read only for the notices a policy could hold
        back: with Mastodon's defaults, private mentions alone. ``parties``: the cards ``_cards_of_parties`` read,
        which say whose senders a moderator limited."""
        private = {e.status_id: e.in_reply_to_account for e in events
                   if isinstance(e, StatusCreated) and e.visibility == DIRECT}
        limited = {n.from_account_id for n in notices
                   if n.type in FILTERABLE and (card := parties.get(n.from_account_id)) is not None
                   and is_limited_card(card)}
        asked = {index: notice for index, notice in enumerate(notices)
                 if needs_facts(policies.get(notice.account_id, DEFAULT_POLICY), notice,
                                private_unanswered(notice, private), notice.from_account_id in limited)}
        if not asked:
            return notices, []
        senders: dict[int, set[int]] = {}
        for notice in asked.values():
            senders.setdefault(notice.account_id, set()).add(notice.from_account_id)
        (follows, followed), permitted = await asyncio.gather(self.relations.of(senders),
                                                              self.policies.permitted(senders))
        now = datetime.now(UTC)
        verdicts = {index: verdict(
            policies.get(notice.account_id, DEFAULT_POLICY), notice,
            Facts((notice.account_id, notice.from_account_id) in follows,
                  followed.get((notice.account_id, notice.from_account_id)), private_unanswered(notice, private),
                  notice.from_account_id in limited),
            permitted=(notice.account_id, notice.from_account_id) in permitted, now=now)
            for index, notice in asked.items()}
        return split(notices, verdicts)

    async def _cards_of_parties(self, notices: Sequence[Notification]) -> dict[int, bytes]:
        """The cards of the notified accounts and of who notified them, one pipelined read beside the batch's other
        reads: a suspended account is told of nothing (``to_available``), a limited sender's notices go by the
        recipient's policy (``_policed``), and the deliveries of notifications render their senders from them."""
        parties = {n.account_id for n in notices} | {n.from_account_id for n in notices}
        return await self.accounts.cards(parties) if parties else {}

    async def _notifying_options(self, authors: list[int]) -> dict[int, dict[int, FollowOptions]]:
        """The followers that asked to be notified (with the languages they take) of authors whose lists are not
        read (``notified_from_options``), kept under their follower lists' versions: only those, whose number is
        the notifications' own (the partition of every non-default option of a large account could be as long as a
        good part of its audience)."""
        if not authors:
            return {}
        return await self.follow_options.notified.of(await self.follower_lists.claim(authors))

    async def _tag_audiences(self, plans: list[_Plan], hashtagged: list[StatusCreated | StatusDeleted | StatusEdited],
                             tag_followers: dict[str, list[int]], followers: dict[int, list[int]],
                             hidden: dict[int, set[int]]) -> dict[int, list[int]]:
        """``tag_audiences`` of the batch. A large author's followers are never read whole (its followers
        receive its statuses at read time and by broadcast): the audience of each of its statuses is checked
        against them with one read."""
        audiences = tag_audiences(hashtagged, tag_followers, followers, hidden)
        large = [(p.event.status_id, p.event.account_id) for p in plans
                 if p.large and isinstance(p.event, StatusCreated | StatusDeleted | StatusEdited)
                 and p.event.status_id in audiences]
        if large:
            among = await asyncio.gather(*(self.graph.followers_among(author, audiences[status_id])
                                           for status_id, author in large))
            for (status_id, _), following in zip(large, among, strict=True):
                reached = set(following)
                audiences[status_id] = [a for a in audiences[status_id] if a not in reached]
        return audiences

    async def _publish(self, published: list[int], unpublished: list[int]) -> None:
        """The batch's changes to the public timeline: Cassandra's record first, then Redis's list. In that order
        because the list's rebuild reads the record: a status pushed before its row landed could be missed by a
        rebuild that read the record just before (kicau/feeds.py, ``_BEGIN_REBUILD``)."""
        await self.public.apply(published, unpublished)
        # Safe to send again if the connection breaks: a push or removal repeated changes nothing.
        await resp.round_trip(self.redis, self.feeds.key_changes(keys.public_feed(), published, unpublished))

    async def _deliver_all(self, plans: list[_Plan], audiences: _Audiences, large: set[int],
                           notices: list[Notification], joining: list[ConversationChange],
                           listing: asyncio.Future[list[object]] | None, parties: Mapping[int, bytes]) -> None:
        """Stream deliveries of the whole batch, in a round trip of their own before any timeline write: a
        status reaches open streams in the time of one small pipeline, not after the batch's timeline writes.
        If it carries a notification or a conversation, it goes out once ``listing`` (their records) is done.
        ``parties``: the cards already read of the notifications' accounts, not read again."""
        followers, addressed, by_tags = audiences.followers, audiences.addressed, audiences.by_tags
        narrowed, hidden = audiences.narrowed, audiences.hidden
        if not len(self.online):
            return
        notices = [n for n in notices if self.online.any_online((n.account_id,))]
        quotes_shown = await self._quotes_shown(notices)
        public_listened = self.online.any_online((PUBLIC_LISTENERS,))
        cards = await self._cards_for_online([p.event for p in plans], followers, large,
                                             {n.from_account_id for n in notices}, public_listened, by_tags,
                                             parties)
        pipe = self.redis.pipeline(transaction=False)
        updates: dict[int, str] = {}  # status id -> its Status JSON, for the mentions among ``notices``
        reblogged: dict[int, str] = {}  # reblog id -> the reblogged Status JSON, for the reblogs among ``notices``
        for plan in plans:
            event = plan.event
            if isinstance(event, StatusCreated):
                card = cards.get(event.account_id)
                if card is None:
                    continue
                fragment = _as_streamed(event.status_json.encode(), card)
                if event.reblog:
                    fragment = with_reblog(fragment, event.reblog.encode())
                    reblogged[event.status_id] = event.reblog
                payload = compose_status(fragment, card).decode()
                updates[event.status_id] = payload
                # Not a limited (silenced) author's: the public streams leave it out, as the public timelines do.
                if public_listened and event.visibility == PUBLIC and not event.reblog_of \
                        and not is_limited_card(card):
                    self._deliver(pipe, "update", event, payload, [PUBLIC_LISTENERS], public=True,
                                  tags=tuple(event.tags))
                if not reaches_followers(event.visibility):
                    self._deliver(pipe, "update", event, payload, _addressees(event, addressed))
                elif plan.large:
                    self._broadcast(pipe, "update", event, payload,
                                    hidden.get(event.account_id, set()) | hidden.get(event.reblog_author, set()))
                    if event.status_id in by_tags:  # none of them follows the author (``_tag_audiences``)
                        self._deliver(pipe, "update", event, payload, by_tags[event.status_id])
                elif event.status_id in narrowed:
                    self._deliver(pipe, "update", event, payload,
                                  [*narrowed[event.status_id], *by_tags.get(event.status_id, ())])
                    self._deliver_to_lists(pipe, "update", event, payload, audiences.list_streams)
                else:
                    # One delivery a gateway for a status: a gateway drops a second as a replay.
                    self._deliver(pipe, "update", event, payload,
                                  [event.account_id, *followers[event.account_id], *by_tags.get(event.status_id, ())])
                    self._deliver_to_lists(pipe, "update", event, payload, audiences.list_streams)
            elif isinstance(event, StatusDeleted):
                # The bare id, as Mastodon sends it: "data: 123" on SSE, "payload":"123" on a WebSocket.
                payload = str(event.status_id)
                if public_listened and event.visibility == PUBLIC and not event.reblog_of:
                    self._deliver(pipe, "delete", event, payload, [PUBLIC_LISTENERS], public=True,
                                  tags=tuple(event.tags))
                if not reaches_followers(event.visibility):
                    # Every account its update may have reached; to the others, the id of a status they may read.
                    self._deliver(pipe, "delete", event, payload, [event.account_id, *event.mentions])
                elif plan.large:
                    self._broadcast(pipe, "delete", event, payload, hidden.get(event.account_id, set()))
                    if event.status_id in by_tags:  # none of them follows the author (``_tag_audiences``)
                        self._deliver(pipe, "delete", event, payload, by_tags[event.status_id])
                else:
                    # One delivery a gateway for a status: a gateway drops a second as a replay.
                    self._deliver(pipe, "delete", event, payload,
                                  [event.account_id, *followers[event.account_id], *by_tags.get(event.status_id, ())])
                    self._deliver_to_lists(pipe, "delete", event, payload, audiences.lists)
            elif isinstance(event, StatusEdited):
                card = cards.get(event.account_id)
                if card is not None:
                    updates[event.status_id] = compose_status(_as_streamed(event.status_json.encode(), card),
                                                              card).decode()
                    self._deliver_edit(pipe, plan, event, updates[event.status_id], audiences,
                                       public_listened and not is_limited_card(card))
        accepted = accepted_times(p.event for p in plans)
        favoured: dict[int, str] = {}  # favourite id -> the favourited Status JSON
        ended: dict[int, str] = {}  # a poll's end's notification id -> its status's JSON
        filed: dict[int, bytes] = {}  # report id -> the Report JSON
        warned: dict[int, bytes] = {}  # warning id -> the AccountWarning JSON
        for event in (p.event for p in plans):
            if isinstance(event, StatusFavourited):
                favoured[event.favourite_id] = event.status
            elif isinstance(event, PollEnded):
                ended[event.notification_id] = event.status_json
            elif isinstance(event, ReportFiled):
                filed[event.report_id] = event.report_json.encode()
            elif isinstance(event, AccountWarned):
                warned[event.warning_id] = event.warning_json.encode()
        for notice in notices:
            from_card = cards.get(notice.from_account_id)
            status = (favoured.get(notice.id) if notice.type == FAVOURITE
                      else ended.get(notice.id) if notice.type == POLL
                      else reblogged.get(notice.id) if notice.type == REBLOG
                      else quotes_shown.get((notice.account_id, notice.id)) if notice.type == QUOTED_UPDATE
                      else updates.get(notice.status_id) if notice.status_id is not None else None)
            if from_card is None or (notice.status_id is not None and status is None):
                continue
            report = filed.get(notice.id) if notice.type == ADMIN_REPORT else None
            warning = warned.get(notice.id) if notice.type == MODERATION_WARNING else None
            self._notify(pipe, notice, rendered(notice, from_card, status.encode() if status else None,
                                                report, warning).decode(),
                         accepted[notice.id])
        joining = [c for c in joining if self.online.any_online((c.account_id,))]
        await self._deliver_conversations(pipe, joining, updates, cards, accepted)
        if listing is not None and (notices or joining):
            await asyncio.shield(listing)  # shielded: the batch awaits it again with its other records
        if len(pipe):
            await pipe.execute()
            published_ms = time.time() * 1000.0
            for plan in plans:
                if isinstance(plan.event, StatusCreated | StatusDeleted | StatusEdited):
                    FANOUT_PUBLISH_LAG_SECONDS.observe(max(0.0, published_ms - plan.event.occurred_at) / 1000.0)

    async def _write_all(self, plans: list[_Plan], audiences: _Audiences, recent: dict[int, list[int]]) -> int:
        """Every Redis write of the batch, in event order, on one connection, packed by ``TimelineWrites``.

        Consecutive new statuses are pushed together (``timeline_groups``): every status of such a run that a
        timeline receives goes to it in the same script call (which writes up to 256 timelines), so a burst (or a
        fanout catching up) visits each timeline once, not once per status or per author. Anything else (a
        delete, a follow, a scale change) closes the run first, so every write keeps its order relative to
        those."""
        followers, addressed, by_tags, narrowed = (audiences.followers, audiences.addressed, audiences.by_tags,
                                                   audiences.narrowed)
        cap = self.settings.home_timeline_cap
        entries = 0
        writes = self.feeds.writes()
        counted = statuses_counted([plan.event for plan in plans])
        if counted:  # the instance's count of statuses (kicau/instance_usage.py), with the batch's other writes
            writes.raw(instance_usage.statuses_command(counted), 1)
        # And its weekly activity: the statuses posted, reblogs left out (one command a week, nearly always one).
        for packed in instance_usage.weekly_statuses_commands(
                ms_from_id(plan.event.status_id) for plan in plans
                if isinstance(plan.event, StatusCreated) and not plan.event.reblog_of):
            writes.raw(packed, 1)
        # And each day's, for staff's dashboard: who posted, how many interactions.
        for packed in instance_usage.daily_activity_commands(*daily_activity([plan.event for plan in plans])):
            writes.raw(packed, 1)
        run: dict[int, list[int]] = {}  # author -> its new statuses in the current run, in order
        chunk = self.own.pipeline_chunk

        async def close_run(sender: Sender) -> int:
            written = 0
            for recipients, status_ids in timeline_groups(run, followers):
                for start in range(0, len(recipients), chunk):
                    writes.push(recipients[start:start + chunk], status_ids)
                    await flush_if_full(sender)
                written += len(status_ids) * len(recipients)
            run.clear()
            return written

        async def flush_if_full(sender: Sender) -> None:
            if writes.weight >= chunk:
                await sender.send(*writes.take())

        async def to_tag_followers(sender: Sender, event: StatusCreated | StatusDeleted) -> int:
            # Pushed (or removed) at the status's place in the batch, not with its author's run: a timeline
            # that receives a newer status of the run this way takes the push script's out-of-order path.
            audience = by_tags.get(event.status_id, [])
            for start in range(0, len(audience), chunk):
                if isinstance(event, StatusCreated):
                    writes.push(audience[start:start + chunk], (event.status_id,))
                else:
                    writes.unpush(audience[start:start + chunk], (event.status_id,))
                await flush_if_full(sender)
            return len(audience) if isinstance(event, StatusCreated) else 0

        def to_lists(event: StatusCreated | StatusDeleted) -> int:
            # Pushed (or removed) at the status's place in the batch, into list timelines that exist
            # (kicau/lists.py): one script call a list.
            lists = audiences.lists.get(event.status_id, ())
            for membership in lists:
                if isinstance(event, StatusCreated):
                    writes.push_key(keys.list_feed(membership.list_id), (event.status_id,))
                else:
                    writes.unpush_key(keys.list_feed(membership.list_id), (event.status_id,))
            return len(lists) if isinstance(event, StatusCreated) else 0

        async with Sender(self.redis) as sender:
            for plan in plans:
                event = plan.event
                FANOUT_EVENTS.labels(event.__struct_config__.tag).inc()
                if isinstance(event, StatusCreated):
                    writes.raw(cache_command(event.status_id, event.account_id, event.status_json.encode(),
                                             event.reblog_of, event.conversation_id), 1)
                    if not reaches_followers(event.visibility) or event.status_id in narrowed:
                        # Its author's and its mentioned followers' timelines alone (kicau/visibility.py), or a
                        # reblog's audience without who hides the reblogged author; after the run before it, so
                        # they still receive their statuses oldest first.
                        recipients = (narrowed[event.status_id] if event.status_id in narrowed
                                      else _addressees(event, addressed))
                        entries += await close_run(sender) + len(recipients)
                        for start in range(0, len(recipients), chunk):
                            writes.push(recipients[start:start + chunk], (event.status_id,))
                            await flush_if_full(sender)
                    elif plan.large:
                        writes.push([event.account_id], (event.status_id,))
                        writes.push_key(keys.author_feed(event.account_id), (event.status_id,))
                        entries += 1
                    else:
                        run.setdefault(event.account_id, []).append(event.status_id)
                    entries += await to_tag_followers(sender, event)
                    entries += to_lists(event)
                    continue
                if isinstance(event, StatusFavourited | StatusUnfavourited | FollowRequested | FollowRequestSettled
                              | PollEnded | AccountRegistered | ReportFiled | AccountWarned):
                    continue  # nothing in Redis: its notification is recorded with the batch's others
                if isinstance(event, StatusEdited):
                    continue  # timelines hold ids: reads render the new version (services/post/edits.py)
                entries += await close_run(sender)
                if isinstance(event, AccountScaleChanged):
                    if not event.large:
                        statuses = recent[event.account_id][:cap]
                        for start in range(0, len(followers[event.account_id]), chunk):
                            writes.push(followers[event.account_id][start:start + chunk], statuses)
                            await flush_if_full(sender)
                        entries += len(statuses) * len(followers[event.account_id])
                        writes.raw(command(b"DEL", keys.author_feed(event.account_id).encode()), 1)
                    self.large.note(event.account_id, event.large)
                elif isinstance(event, StatusDeleted):
                    writes.raw(tombstone_command(event.status_id), 1)
                    if plan.large:
                        # Followers' timelines may still hold the id from before the account grew; reads drop
                        # tombstoned statuses, so nothing per follower is needed here.
                        mentioned = event.mentions if not reaches_followers(event.visibility) else []
                        writes.unpush([event.account_id, *mentioned], (event.status_id,))
                        writes.unpush_key(keys.author_feed(event.account_id), (event.status_id,))
                    else:
                        writes.unpush([event.account_id, *followers[event.account_id]], (event.status_id,))
                    await to_tag_followers(sender, event)
                    to_lists(event)
                elif isinstance(event, FollowCreated):
                    backfill = audiences.backfills[event.follower_id, event.followee_id]
                    writes.push([event.follower_id], backfill)
                    entries += len(backfill)
                elif isinstance(event, AccountHidden):
                    # A block or mute removes every status of its target the timeline can hold.
                    writes.unpush([event.account_id], recent[event.target_id][:cap])
                else:
                    # Unfollow removes every status of the former followee the timeline can hold.
                    writes.unpush([event.follower_id], recent[event.followee_id][:cap])
                await flush_if_full(sender)
            entries += await close_run(sender)
            await sender.send(*writes.take())
            await sender.finish()
        return entries

    def _deliver_edit(self, pipe: Pipeline, plan: _Plan, event: StatusEdited, payload: str, audiences: _Audiences,
                      public_listened: bool) -> None:
        """An edit's ``status.update``, to the streams its status went to: as a delete's, to its author and
        followers (or their gateways, for a large author), its hashtags' followers and streams (of both
        versions' hashtags), its author's lists, and a direct status's mentioned accounts (of either version).
        ``public_listened``: someone listens to the public streams, and the author is not limited."""
        by_tags = audiences.by_tags.get(event.status_id, [])
        if public_listened and event.visibility == PUBLIC:
            self._deliver(pipe, "status.update", event, payload, [PUBLIC_LISTENERS], public=True,
                          tags=tuple(stream_tags(event)))
        if not reaches_followers(event.visibility):
            self._deliver(pipe, "status.update", event, payload, [event.account_id, *event.mentions])
        elif plan.large:
            self._broadcast(pipe, "status.update", event, payload, audiences.hidden.get(event.account_id, set()))
            if by_tags:
                self._deliver(pipe, "status.update", event, payload, by_tags)
        else:
            self._deliver(pipe, "status.update", event, payload,
                          [event.account_id, *audiences.followers[event.account_id], *by_tags])
            self._deliver_to_lists(pipe, "status.update", event, payload, audiences.list_streams)

    async def _cards_for_online(
        self, events: Sequence[Event], followers: dict[int, list[int]], large: set[int], notifiers: set[int],
        public_listened: bool = False, by_tags: dict[int, list[int]] | None = None,
        known: Mapping[int, bytes] | None = None,
    ) -> dict[int, bytes]:
        """Author cards, fetched only for statuses someone may be streaming right now (on the public timeline's
        streams too, when ``public_listened``; followers of their hashtags, ``by_tags``); and the cards of who
        caused the notifications of online accounts (``notifiers``). Those in ``known`` (read earlier in the
        batch) are not read again."""
        by_tags = by_tags or {}
        known = known or {}
        wanted = {
            e.account_id
            for e in events
            if isinstance(e, StatusCreated | StatusEdited)
            and (e.account_id in large or e.account_id not in followers
                 or (public_listened and e.visibility == PUBLIC)
                 or self.online.any_online([e.account_id, *followers[e.account_id]])
                 or self.online.any_online(by_tags.get(e.status_id, ())))
        } | notifiers
        cards = {account_id: known[account_id] for account_id in wanted if account_id in known}
        missing = wanted - cards.keys()
        if missing:
            cards.update(await self.accounts.cards(missing))
        return cards

    def _deliver(
        self, pipe: Pipeline, kind: StreamKind, event: StatusCreated | StatusDeleted | StatusEdited, payload: str,
        recipients: list[int],
        public: bool = False, tags: tuple[str, ...] = (), list_id: int = 0,
    ) -> None:
        # Queued ahead of the timeline writes of the same status, so streams are not held up by a large fanout.
        for gateway, online in self.online.gateways_of(recipients).items():
            delivery = StreamDelivery(
                event=kind,
                status_id=event.status_id,
                version_id=event.version_id if isinstance(event, StatusEdited) else 0,
                accepted_at=event.occurred_at,
                payload=payload,
                recipients=online,
                # A public timeline's event names its author: a gateway leaves it out of the streams of
                # accounts that block or mute the author or that it blocks (kicau/blocks_and_mutes.py).
                author_id=event.account_id if public else 0,
                public=public,
                tags=tags,
                list_id=list_id,
            )
            pipe.publish(keys.stream_channel(gateway), encode_delivery(delivery))

    async def _lists_streamed(self, events: Sequence[Event],
                              lists: dict[int, list[Membership]]) -> dict[int, list[Membership]]:
        """Of the lists each new or edited status goes to, those whose streams are sent it (its ``update`` or
        ``status.update``): a reply to someone else only where the list's replies policy shows it, as Mastodon pushes
        it (kicau/lists.py, ``showing_reply``). What that asks of Cassandra (the lists the replied-to account is in,
        which owners follow it) is read for such replies alone, and only for the lists whose owners have a stream
        open."""
        replies = {e.status_id: (e.account_id, replied_to) for e in events
                   if isinstance(e, StatusCreated | StatusEdited) and e.status_id in lists
                   and (replied_to := (e.in_reply_to_account if isinstance(e, StatusCreated)
                                       else replied_account(e.status_json))) not in (0, e.account_id)}
        if not replies:
            return lists
        owners = {m.owner_id for status_id in replies for m in lists[status_id]}
        streaming = {a for accounts in self.online.gateways_of(owners).values() for a in accounts}
        shown = await asyncio.gather(*(
            showing_reply([m for m in lists[status_id] if m.owner_id in streaming], author_id=author,
                          replied_to=replied_to, lists_of=self.list_memberships.read,
                          followers_among=self.graph.followers_among)
            for status_id, (author, replied_to) in replies.items()))
        return {**lists, **dict(zip(replies, shown, strict=True))}

    def _deliver_to_lists(self, pipe: Pipeline, kind: StreamKind, event: StatusCreated | StatusDeleted | StatusEdited,
                          payload: str, lists: dict[int, list[Membership]]) -> None:
        """The status's deliveries to the streams of the lists it goes to (kicau/lists.py), one a list and gateway
        of its online owner (gateways tell them apart from the owner's own by the list)."""
        for membership in lists.get(event.status_id, ()):
            self._deliver(pipe, kind, event, payload, [membership.owner_id], list_id=membership.list_id)

    async def _deliver_conversations(self, pipe: Pipeline, joining: list[ConversationChange], updates: dict[int, str],
                                     cards: dict[int, bytes], accepted: dict[int, float]) -> None:
        """A ``conversation`` event on the ``direct`` stream of each online member of a conversation a status
        joined: the conversation as that member reads it (its other accounts, unread but for the author), with the
        status as no one in particular sees it, as the status's own ``update``."""
        joining = [c for c in joining if c.status_id in updates]
        if not joining:
            return
        wanted = {a for c in joining for a in conversations.shown_accounts(c)}
        missing = wanted - cards.keys()
        if missing:
            cards = {**cards, **await self.accounts.cards(missing)}
        for change in joining:
            conversation = Conversation(change.account_id, change.conversation_id, change.root_id,
                                        change.participants, frozenset({change.status_id}), change.unread)
            accounts = [cards[a] for a in conversations.shown_accounts(change) if a in cards]
            payload = conversations.rendered(conversation, accounts, updates[change.status_id].encode()).decode()
            for gateway, online in self.online.gateways_of((change.account_id,)).items():
                delivery = StreamDelivery(event="conversation", status_id=change.status_id,
                                          accepted_at=accepted[change.status_id], payload=payload,
                                          recipients=online)
                pipe.publish(keys.stream_channel(gateway), encode_delivery(delivery))

    async def _updates_replaced(self, edits: Sequence[StatusEdited], boosters: Sequence[list[int]],
                                ) -> list[tuple[int, int]]:
        """The ``update`` notifications the batch's edits replace (kicau/notifications.py, ``UpdateNotices``): each
        booster's of the status's edit before. One edit after another, in the batch's order: two edits of a status
        in one batch, the second replaces the first's."""
        found: list[tuple[int, int]] = []
        for e, accounts in zip(edits, boosters, strict=True):
            if accounts:
                old = await self.update_notices.replaced(e.status_id, e.version_id)
                if old:
                    found += [(account, old) for account in dict.fromkeys(accounts) if account != e.account_id]
        return found

    async def _quotes_shown(self, notices: Sequence[Notification]) -> dict[tuple[int, int], str]:
        """The quote each ``quoted_update`` among ``notices`` names, as its recipient (its author) sees it, by
        (recipient, notification id): rare (an edit of a quoted status), so each is rendered here, as a read would."""
        wanted = [n for n in notices if n.type == QUOTED_UPDATE and n.status_id is not None]
        if not wanted:
            return {}
        shown = await asyncio.gather(*(self.statuses.render_one(n.status_id, Reader(n.account_id), marks=False)
                                       for n in wanted if n.status_id is not None))
        return {(n.account_id, n.id): status.decode() for n, status in zip(wanted, shown, strict=True)
                if status is not None}

    def _notify(self, pipe: Pipeline, notice: Notification, payload: str, accepted_at: float) -> None:
        for gateway, online in self.online.gateways_of((notice.account_id,)).items():
            delivery = StreamDelivery(event="notification", status_id=notice.id, accepted_at=accepted_at,
                                      payload=payload, recipients=online)
            pipe.publish(keys.stream_channel(gateway), encode_delivery(delivery))

    def _broadcast(self, pipe: Pipeline, kind: StreamKind, event: StatusCreated | StatusDeleted | StatusEdited,
                   payload: str, hidden_from: set[int]) -> None:
        """One message for every gateway; each delivers to its own connections that follow the author, but not
        to those in ``hidden_from`` (who block or mute the author, or a reblog's)."""
        delivery = StreamDelivery(
            event=kind,
            status_id=event.status_id,
            version_id=event.version_id if isinstance(event, StatusEdited) else 0,
            accepted_at=event.occurred_at,
            payload=payload,
            recipients=[],
            author_id=event.account_id,
            followers_of_author=True,
            hidden_from=sorted(hidden_from),
        )
        pipe.publish(keys.LARGE_ACCOUNTS_CHANNEL, encode_delivery(delivery))
