"""The events that cross Kafka, typed and versioned, and the one serialisation used for them (msgspec JSON).

Status events are keyed by author id so one author's creates and deletes stay ordered in one partition;
follow events are keyed by follower id so one follower's follows and unfollows stay ordered (and a block's or mute's
with them, by the account that hides), and favourite events
by the account that favourites, for the same reason. A sign-up and a report, which the staff are told of, travel on
the follows topic too, by the account that signs up or reports.
"""

from __future__ import annotations

import time
import uuid
from typing import Literal

import msgspec

SCHEMA_VERSION = 1


def _event_id() -> str:
    return uuid.uuid4().hex


def _now_ms() -> float:
    return time.time() * 1000.0


class _Event(msgspec.Struct, tag_field="type", kw_only=True):
    schema_version: int = SCHEMA_VERSION
    event_id: str = msgspec.field(default_factory=_event_id)
    # Wall-clock milliseconds when the event was accepted; delivery latency is measured from here.
    occurred_at: float = msgspec.field(default_factory=_now_ms)


class StatusCreated(_Event, tag="status.created"):
    status_id: int
    account_id: int
    # The Status entity without its "account" member, rendered once by the post service and reused verbatim
    # by the cache, the timelines and the stream (serialise once).
    status_json: str
    # Who the fanout writes it to (kicau/visibility.py): a direct status goes to its author alone. Events
    # published before the field existed read as public, as they were fanned out then.
    visibility: str = "public"
    # The local accounts it mentions (kicau/mentions.py): a direct status also reaches those of them that follow
    # its author.
    mentions: list[int] = msgspec.field(default_factory=list)
    # A reblog (kicau/reblogs.py): the status it reblogs and that status's author (who is notified), and that
    # status as no one in particular sees it (every flag false), spliced into the stream's update and the
    # notification. 0, 0 and "" for any other status.
    reblog_of: int = 0
    reblog_author: int = 0
    reblog: str = ""
    # Its hashtags in normal form (kicau/hashtags.py): a public one is listed on each hashtag's timeline.
    tags: list[str] = msgspec.field(default_factory=list)
    # The author of the status it replies to (0: none), and its language ("": none given): a follow's options
    # (kicau/follow_options.py) notify of no reply to someone else and keep out languages the follower did not
    # ask for. Events from before the fields read as no reply, no language.
    in_reply_to_account: int = 0
    language: str = ""
    # The root of its thread (kicau/conversations.py): a direct status joins its members' conversation of that
    # thread. 0 for the status's own id (a status that replies to nothing, and events from before the field).
    conversation_id: int = 0
    # The author of the status it quotes (kicau/quotes.py), who is notified (``quote``); 0 for no quote.
    quoted_account: int = 0
    # The id of that ``quote`` notification, made when the status was: a quote that also mentions the quoted
    # author tells it twice, the mention (its id the status's) and the quote, as Mastodon tells it. 0: the status's
    # own id (an event published before 2026-12-05, whose quote that mentions its author told the mention alone).
    quote_notification_id: int = 0
    # The id of the ``status`` notifications it gives its author's followers who asked (kicau/follow_options.py),
    # made when it mentions anyone: a follower it also mentions is told both, as Mastodon tells it. 0: the status's
    # own id (a status that mentions no one, or an event from before 2026-12-05, whose mentioned followers were told
    # the mention alone).
    status_notification_id: int = 0


class StatusDeleted(_Event, tag="status.deleted"):
    status_id: int
    account_id: int
    # The deleted status's: a direct status's delete is streamed to its author and the accounts it mentions, the
    # only ones its update can have reached.
    visibility: str = "public"
    mentions: list[int] = msgspec.field(default_factory=list)
    # A reblog given back: the reblogged status's author loses the notification.
    reblog_of: int = 0
    reblog_author: int = 0
    # The deleted status's hashtags: it leaves their timelines.
    tags: list[str] = msgspec.field(default_factory=list)
    # The root of its thread, as on its StatusCreated: a direct status leaves its members' conversations.
    conversation_id: int = 0


class StatusEdited(_Event, tag="status.edited"):
    """A status rewritten by its author (services/post/edits.py), or shown otherwise than before (``notifies``
    false): its streams get a ``status.update``, its hashtags' timelines follow its new text. Home and list
    timelines hold ids, and reads render the new version."""

    status_id: int
    account_id: int
    # The new version's id (a snowflake, when it was made): two edits of one status are two stream events.
    version_id: int
    # The Status entity without "account", as the new version renders (edited_at set), for the streams.
    status_json: str
    visibility: str = "public"
    # The accounts either version mentions: a direct status's update goes to its author and these.
    mentions: list[int] = msgspec.field(default_factory=list)
    # The hashtags of the new version and of the one before: it joins the timelines of those added and leaves
    # those of the ones removed.
    tags: list[str] = msgspec.field(default_factory=list)
    tags_before: list[str] = msgspec.field(default_factory=list)
    # The accounts the new version mentions and the one before did not: each is notified of the mention, as of a
    # new status's (Mastodon tells them nothing, its issue 20543; a mention added to fix a wrong handle is the
    # usual edit). An event taking an edit back adds none.
    mentions_added: list[int] = msgspec.field(default_factory=list)
    # Whether those who reblogged or quote it are told (``update``, ``quoted_update``): an edit's event does; one
    # that takes an edit back, or restates the status after a change its text did not make (its quote revoked, who
    # may quote it), only streams the status as it now reads.
    notifies: bool = True
    # The id of the ``quoted_update`` it gives each account that quotes it (the ``update`` of those that reblogged
    # it is ``version_id``): an account that did both is told both, as Mastodon tells it. 0: ``version_id`` (an event
    # published before 2026-12-05, whose accounts were told the ``update`` alone).
    quoted_update_id: int = 0


class PollEnded(_Event, tag="poll.ended"):
    """A status's poll ended (kicau/polls.py): its author and everyone who voted are notified (``poll``). Published
    by the post service's scheduler (services/post/poll_endings.py), again by a retry, with the same id."""

    status_id: int
    account_id: int  # the poll's author
    notification_id: int  # a snowflake of the moment it ended, the same however often it is published
    # The status as anyone sees it now (the poll ended, its counts shown), Status JSON with its account, for the
    # notification the streams carry.
    status_json: str


class FollowCreated(_Event, tag="follow.created"):
    follower_id: int
    followee_id: int
    # The id of the followee's "follow" notification (kicau/notifications.py), given when the follow is new; 0
    # on a repeated follow (published again so that the fanout's backfill is retried), which notifies no one.
    notification_id: int = 0


class FollowDeleted(_Event, tag="follow.deleted"):
    follower_id: int
    followee_id: int


class FollowRequested(_Event, tag="follow.requested"):
    """An account asked to follow a locked one (kicau/follow_requests.py): the target's ``follow_request``
    notification, whose id is the request's. Published again by a retry (the same id: recorded once)."""

    requester_id: int
    target_id: int
    request_id: int


class FollowRequestSettled(_Event, tag="follow.request_settled"):
    """A follow request was authorized, rejected or withdrawn: its notification goes. On the requester's key, as
    the request, so always after it."""

    requester_id: int
    target_id: int
    request_id: int


class AccountHidden(_Event, tag="account.hidden"):
    """An account blocked or muted another (kicau/blocks_and_mutes.py), or put it in an exclusive list
    (kicau/lists.py): the target's statuses leave the account's home timeline. Published on the follows topic with
    the account's key, ordered with its follows."""

    account_id: int  # who hides
    target_id: int


class AccountScaleChanged(_Event, tag="account.scale_changed"):
    """An account crossed the large-account threshold. Published on the statuses topic with the account's
    key, so it is ordered with that account's own statuses: the fanout treats every status before it one way
    and every status after it the other."""

    account_id: int
    large: bool


class StatusFavourited(_Event, tag="status.favourited"):
    """A new favourite (kicau/favourites.py): the status's author is notified, unless it favourites its own."""

    account_id: int  # who favourites
    status_id: int
    author_id: int
    favourite_id: int  # the notification's id too
    # The Status as its author sees it once favourited, for the notification's stream event.
    status: str


class StatusUnfavourited(_Event, tag="status.unfavourited"):
    """A favourite given back: its notification goes."""

    account_id: int
    status_id: int
    author_id: int
    favourite_id: int


class AccountRegistered(_Event, tag="account.registered"):
    """An account signed up (services/graph/service.py ``register``), once it exists: the staff who may manage
    accounts are told (Mastodon's ``admin.sign_up``, its id the account's)."""

    account_id: int


class ReportFiled(_Event, tag="report.filed"):
    """A report was filed (kicau/reports.py), once it is kept: the staff who may manage reports are told
    (Mastodon's ``admin.report``, its id the report's)."""

    report_id: int
    account_id: int  # who reported
    target_id: int
    # The Report entity as filed, with its target's Account, for the notification the streams carry.
    report_json: str


class AccountWarned(_Event, tag="account.warned"):
    """Staff took an action on the account and asked that it be told (kicau/account_warnings.py), once the warning
    is kept: Mastodon's ``moderation_warning``, its id the warning's."""

    warning_id: int
    account_id: int  # the warned account
    # The AccountWarning entity, with the account's Account, for the notification the streams carry.
    warning_json: str


StatusEvent = (StatusCreated | StatusDeleted | StatusEdited | AccountScaleChanged | StatusFavourited
               | StatusUnfavourited | PollEnded)
FollowEvent = (FollowCreated | FollowDeleted | AccountHidden | FollowRequested | FollowRequestSettled
               | AccountRegistered | ReportFiled | AccountWarned)
Event = (StatusCreated | StatusDeleted | StatusEdited | AccountScaleChanged | FollowCreated | FollowDeleted
         | StatusFavourited | StatusUnfavourited | AccountHidden | FollowRequested | FollowRequestSettled | PollEnded
         | AccountRegistered | ReportFiled | AccountWarned)
EventType = Literal[
    "status.created", "status.deleted", "status.edited", "account.scale_changed", "follow.created",
    "follow.deleted", "status.favourited", "status.unfavourited", "account.hidden", "follow.requested",
    "follow.request_settled", "poll.ended", "account.registered", "report.filed",
]

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Event)


def encode_event(event: Event) -> bytes:
    return _encoder.encode(event)


def decode_event(raw: bytes) -> Event:
    """Decode one event; raises msgspec.DecodeError / ValidationError on anything malformed."""
    event: Event = _decoder.decode(raw)
    return event


def event_key(event: Event) -> bytes:
    """The Kafka partitioning key that keeps the events that must stay ordered in one partition."""
    if isinstance(event, StatusCreated | StatusDeleted | StatusEdited | AccountScaleChanged | StatusFavourited
                  | StatusUnfavourited | PollEnded):
        return str(event.account_id).encode()
    if isinstance(event, AccountHidden | AccountRegistered | ReportFiled | AccountWarned):
        # a block's or mute's with the hider's follows; a sign-up or a report by the account that makes it; a
        # warning with the warned account's events
        return str(event.account_id).encode()
    if isinstance(event, FollowRequested | FollowRequestSettled):
        return str(event.requester_id).encode()  # with the requester's follows
    return str(event.follower_id).encode()
