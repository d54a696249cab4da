"""Blocks and mutes as pure logic (kicau/blocks_and_mutes.py, services/fanout/service.py): how an author's hiders
are kept, whose hiders a batch reads, and who receives a reblog some followers hide. Blocking, muting and what they
keep out run against the real system in tests/graph/test_blocks_and_mutes.py."""

from __future__ import annotations

import msgspec

from kicau.blocks_and_mutes import BLOCK, MUTE, encode_hiders, notification_hiders, status_hiders
from kicau.events import (
    AccountHidden,
    Event,
    FollowCreated,
    StatusCreated,
    StatusDeleted,
    decode_event,
    encode_event,
    event_key,
)
from kicau.notifications import MENTION, Notification
from kicau.stream_events import StreamDelivery, decode_delivery, encode_delivery
from services.fanout.service import hiders_wanted, narrowed_audiences, tag_audiences

AUTHOR, REBLOGGER, LARGE = 1, 2, 3


def test_hiders_are_kept_as_one_signed_id_each() -> None:
    rows = [(10, BLOCK, False), (11, MUTE, True), (12, MUTE, False), (13, MUTE, False), (13, BLOCK, False)]
    encoded = encode_hiders(rows)
    # A block or a mute of both: the id; a mute that keeps notifications: its negation; both kinds: the stronger.
    assert sorted(encoded) == [-12, 10, 11, 13]
    assert status_hiders(encoded) == {10, 11, 12, 13}
    assert notification_hiders(encoded) == {10, 11, 13}
    assert encode_hiders([]) == [] and status_hiders([]) == set() == notification_hiders([])


def created(status_id: int, author: int = AUTHOR, **fields: object) -> StatusCreated:
    return msgspec.convert({"status_id": status_id, "account_id": author, "status_json": "{}", **fields},
                           StatusCreated)


def test_the_authors_whose_hiders_a_batch_reads() -> None:
    plain = created(1)  # fanned out to a follower list that comes without its hiders: nothing more to read
    assert hiders_wanted([plain, StatusDeleted(status_id=1, account_id=AUTHOR)], [], set()) == []
    events: list[Event] = [
        plain,
        created(2, REBLOGGER, reblog_of=1, reblog_author=AUTHOR),  # the reblogged author's
        created(3, 4, visibility="direct", mentions=[5]),  # a direct status that mentions someone
        created(4, 6, visibility="direct"),  # one that mentions no one goes to its author alone
        created(5, 7, tags=["kicau"]),  # its hashtags' followers may hide it
        created(6, LARGE),  # broadcast to a large account's followers
        StatusDeleted(status_id=7, account_id=LARGE),
        FollowCreated(follower_id=9, followee_id=10),  # the backfill skips a follower that hides the followee
    ]
    notices = [Notification(5, 3, MENTION, 8, 3)]  # whoever causes a notification
    assert hiders_wanted(events, notices, {LARGE}) == [AUTHOR, LARGE, 4, 7, 8, 10]


def test_a_reblog_skips_the_followers_who_hide_the_reblogged_author() -> None:
    reblog = created(2, REBLOGGER, reblog_of=1, reblog_author=AUTHOR)
    own = created(3, REBLOGGER)
    followers = {REBLOGGER: [20, 21, 22]}
    assert narrowed_audiences([reblog, own], followers, {AUTHOR: {21, 99}}, {}) == {2: [REBLOGGER, 20, 22]}
    # No follower hides it, or nobody hides the author: the reblog goes with its reblogger's other statuses.
    assert narrowed_audiences([reblog], followers, {AUTHOR: {99}}, {}) == {}
    assert narrowed_audiences([reblog], followers, {}, {}) == {}
    # A large reblogger's followers are never read: its broadcast names who hides the author instead.
    assert narrowed_audiences([reblog], {}, {AUTHOR: {21}}, {}) == {}


def test_a_hashtags_followers_who_hide_the_author_are_left_out() -> None:
    status = created(5, AUTHOR, tags=["a"])
    assert tag_audiences([status], {"a": [7, 8, 9]}, {}, {AUTHOR: {8}}) == {5: [7, 9]}
    assert tag_audiences([status], {"a": [8]}, {}, {AUTHOR: {8}}) == {}


def test_the_hide_event_and_the_broadcasts_exceptions_travel_intact() -> None:
    event = AccountHidden(account_id=4, target_id=5)
    assert decode_event(encode_event(event)) == event
    assert event_key(event) == b"4"  # ordered with the hider's follows
    delivery = StreamDelivery(event="update", status_id=1, accepted_at=0.0, payload="{}", recipients=[],
                              author_id=LARGE, followers_of_author=True, hidden_from=[8, 9])
    assert decode_delivery(encode_delivery(delivery)) == delivery
    # A delivery from before the field, or without exceptions, reads as hiding from no one.
    plain = StreamDelivery(event="delete", status_id=1, accepted_at=0.0, payload="1", recipients=[2])
    assert b"hidden_from" not in encode_delivery(plain)
    assert decode_delivery(encode_delivery(plain)).hidden_from == []
