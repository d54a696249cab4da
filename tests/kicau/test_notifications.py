"""Notifications as pure logic (kicau/notifications.py, services/fanout/service.py): what events notify, the
types a request asks for, and the entity as rendered. Recording, serving and streaming them run against the real
system in tests/timeline/test_notifications.py."""

from __future__ import annotations

import msgspec

from kicau.account_warnings import AccountWarning
from kicau.account_warnings import rendered_entity as warning_entity
from kicau.events import (
    AccountRegistered,
    AccountWarned,
    Event,
    FollowCreated,
    FollowDeleted,
    FollowRequested,
    FollowRequestSettled,
    ReportFiled,
    StatusCreated,
    StatusDeleted,
    StatusEdited,
    StatusFavourited,
    StatusUnfavourited,
    decode_event,
    encode_event,
    event_key,
)
from kicau.ids import id_from_ms
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
    STATUS,
    UPDATE,
    Notification,
    rendered,
    wanted_types,
)
from kicau.reports import Report
from kicau.reports import rendered_entity as report_entity
from kicau.staff import ADMIN, EVERYONE, FLAGS, MODERATOR, OWNER, Role
from services.fanout.service import (
    accepted_times,
    notifications_of,
    notifications_removed,
    staff_notifications,
    to_available,
    warning_notifications,
)

AUTHOR, BOB, CAROL = 1, 2, 3


def created(status_id: int, mentions: list[int], visibility: str = "public") -> StatusCreated:
    return StatusCreated(status_id=status_id, account_id=AUTHOR, status_json="{}", visibility=visibility,
                         mentions=mentions)


def test_what_events_notify() -> None:
    events: list[Event] = [
        created(10, [BOB, AUTHOR, CAROL, BOB]),  # its author is not told; each account once
        created(11, []),
        created(12, [CAROL], visibility="direct"),
        FollowCreated(follower_id=BOB, followee_id=CAROL, notification_id=13),
        FollowCreated(follower_id=BOB, followee_id=AUTHOR),  # a repeated follow: no id, no notification
        FollowDeleted(follower_id=BOB, followee_id=CAROL),
        StatusDeleted(status_id=10, account_id=AUTHOR, mentions=[BOB, AUTHOR, CAROL]),
        StatusFavourited(account_id=BOB, status_id=11, author_id=AUTHOR, favourite_id=14, status="{}"),
        StatusFavourited(account_id=AUTHOR, status_id=11, author_id=AUTHOR, favourite_id=15, status="{}"),  # own
        StatusUnfavourited(account_id=CAROL, status_id=11, author_id=AUTHOR, favourite_id=9),
        StatusUnfavourited(account_id=AUTHOR, status_id=11, author_id=AUTHOR, favourite_id=15),
        # An edit tells the accounts it adds a mention of (never the author), not those its versions share.
        StatusEdited(status_id=11, account_id=AUTHOR, version_id=16, status_json="{}", mentions=[BOB, CAROL],
                     mentions_added=[CAROL, AUTHOR]),
        StatusEdited(status_id=12, account_id=AUTHOR, version_id=17, status_json="{}", mentions=[CAROL]),
    ]
    assert notifications_of(events) == [
        Notification(BOB, 10, MENTION, AUTHOR, 10), Notification(CAROL, 10, MENTION, AUTHOR, 10),
        Notification(CAROL, 12, MENTION, AUTHOR, 12), Notification(CAROL, 13, FOLLOW, BOB),
        Notification(AUTHOR, 14, FAVOURITE, BOB, 11), Notification(CAROL, 11, MENTION, AUTHOR, 11),
    ]
    assert notifications_removed(events) == [(BOB, 10), (CAROL, 10), (AUTHOR, 9)]


def test_a_quote_tells_the_quoted_author_beside_any_mention() -> None:
    """A quote notifies the quoted status's author (``quote``, its id the event's ``quote_notification_id``) and,
    if it also mentions that author, the mention too, as Mastodon tells both; never a quote of one's own. By an
    event from before the id, a quote that mentions its author told the mention alone (the ids were the same)."""
    def quoting(status_id: int, mentions: list[int], notification_id: int, author: int = AUTHOR) -> StatusCreated:
        return StatusCreated(status_id=status_id, account_id=author, status_json="{}", mentions=mentions,
                             quoted_account=BOB, quote_notification_id=notification_id)

    assert notifications_of([quoting(30, [], 31)]) == [Notification(BOB, 31, QUOTE, AUTHOR, 30)]
    assert notifications_of([quoting(32, [BOB], 33)]) == [Notification(BOB, 32, MENTION, AUTHOR, 32),
                                                           Notification(BOB, 33, QUOTE, AUTHOR, 32)]
    assert notifications_of([quoting(34, [], 35, author=BOB)]) == []
    assert notifications_of([quoting(36, [], 0)]) == [Notification(BOB, 36, QUOTE, AUTHOR, 36)]
    assert notifications_of([quoting(37, [BOB, CAROL], 0)]) == [Notification(BOB, 37, MENTION, AUTHOR, 37),
                                                                 Notification(CAROL, 37, MENTION, AUTHOR, 37)]


def test_a_follow_request_notifies_until_it_ends() -> None:
    """A follow request's notification (kicau/follow_requests.py) has the request's id; however the request ends,
    that notification is removed."""
    events: list[Event] = [FollowRequested(requester_id=BOB, target_id=CAROL, request_id=20),
                           FollowRequestSettled(requester_id=AUTHOR, target_id=CAROL, request_id=18)]
    assert notifications_of(events) == [Notification(CAROL, 20, FOLLOW_REQUEST, BOB)]
    assert notifications_removed(events) == [(CAROL, 18)]
    # Both ride with the requester's follows, so the settlement comes after its request.
    assert event_key(events[0]) == event_key(FollowCreated(follower_id=BOB, followee_id=CAROL)) == b"2"


def test_the_staff_are_told_of_sign_ups_and_reports() -> None:
    """A sign-up tells every staff account that may manage accounts, a report every one that may manage reports
    (a moderator both, an admin and an owner everything); never the account that signed up or reported. The
    notification's id is the account's or the report's; other events tell the staff nothing."""
    staff = {BOB: MODERATOR, CAROL: ADMIN, 4: OWNER, 5: Role(9, "Reports only", FLAGS["manage_reports"], 5, False),
             6: EVERYONE}
    events: list[Event] = [
        AccountRegistered(account_id=7),
        ReportFiled(report_id=40, account_id=CAROL, target_id=7, report_json="{}"),
        FollowCreated(follower_id=7, followee_id=BOB, notification_id=41),
    ]
    assert staff_notifications(events, staff) == [
        Notification(BOB, 7, ADMIN_SIGN_UP, 7), Notification(CAROL, 7, ADMIN_SIGN_UP, 7),
        Notification(4, 7, ADMIN_SIGN_UP, 7),
        Notification(BOB, 40, ADMIN_REPORT, CAROL), Notification(4, 40, ADMIN_REPORT, CAROL),
        Notification(5, 40, ADMIN_REPORT, CAROL),
    ]
    assert staff_notifications(events, {}) == []
    assert notifications_of(events) == [Notification(BOB, 41, FOLLOW, 7)]  # the graph's, apart
    assert accepted_times(events) == {7: events[0].occurred_at, 40: events[1].occurred_at, 41: events[2].occurred_at}
    # Each rides the follows topic by the account that signs up or reports; decoded as it was encoded.
    assert [event_key(e) for e in events[:2]] == [b"7", b"3"]
    assert [decode_event(encode_event(e)) for e in events[:2]] == events[:2]


def test_the_types_a_request_asks_for() -> None:
    every = {MENTION, FOLLOW, FAVOURITE, REBLOG, STATUS, UPDATE, FOLLOW_REQUEST, POLL, QUOTE, QUOTED_UPDATE,
             ADMIN_SIGN_UP, ADMIN_REPORT, MODERATION_WARNING}
    assert wanted_types([], []) == every
    assert wanted_types(["mention", "favourite", "admin.report"], []) == {MENTION, FAVOURITE, ADMIN_REPORT}
    assert wanted_types([], ["follow", "poll"]) == every - {FOLLOW, POLL}
    assert wanted_types(["follow"], ["follow"]) == set()
    assert wanted_types(["severed_relationships"], []) == set()  # Mastodon's, never recorded here


def test_the_rendered_entity() -> None:
    moment = 1_764_633_600_123  # 2025-12-02T00:00:00.123Z
    card, status = b'{"id":"2","username":"bob"}', b'{"id":"77","content":"<p>hi</p>"}'
    mention = Notification(CAROL, id_from_ms(moment) | 5, MENTION, BOB, 77)
    assert msgspec.json.decode(rendered(mention, card, status)) == {
        "id": str(mention.id), "type": "mention", "created_at": "2025-12-02T00:00:00.123Z",
        "group_key": f"ungrouped-{mention.id}", "account": {"id": "2", "username": "bob"},
        "status": {"id": "77", "content": "<p>hi</p>"},
    }
    follow = Notification(CAROL, id_from_ms(moment), FOLLOW, BOB)
    assert "status" not in msgspec.json.decode(rendered(follow, card, None))
    # A report's notification carries the Report, its target's card spliced in.
    report = Report(id_from_ms(moment) | 9, BOB, AUTHOR, (77,), (), "spam", "spam")
    told = Notification(CAROL, report.id, ADMIN_REPORT, BOB)
    shown = msgspec.json.decode(rendered(told, card, None, report_entity(report, b'{"id":"1"}')))
    assert shown["type"] == "admin.report" and shown["account"] == {"id": "2", "username": "bob"}
    assert "status" not in shown and shown["report"] == {
        "id": str(report.id), "action_taken": False, "action_taken_at": None, "category": "spam",
        "comment": "spam", "forwarded": False, "created_at": "2025-12-02T00:00:00.123Z", "status_ids": ["77"],
        "rule_ids": None, "target_account": {"id": "1"},
    }


def test_a_suspended_account_is_told_of_nothing() -> None:
    """Every notice to an account whose card says it is suspended is dropped, whatever its kind and sender (its
    own warning too); a limited account is told as before, and so is one whose card could not be had."""
    cards = {7: b'{"id":"7","suspended":true}', 8: b'{"id":"8","limited":true}', BOB: b'{"id":"2"}'}
    notices = [Notification(7, 1, "mention", BOB), Notification(7, 2, MODERATION_WARNING, 7),
               Notification(8, 3, "favourite", BOB), Notification(BOB, 4, "follow", 7),
               Notification(99, 5, "status", BOB)]
    assert to_available(notices, cards) == notices[2:]
    assert to_available(notices, {}) == notices


def test_an_account_is_told_of_its_warnings_by_itself() -> None:
    """A warning tells the warned account alone, from itself (Mastodon's: a warning shows no moderator), its id the
    warning's; it rides the follows topic by the warned account; its notification carries the AccountWarning."""
    events: list[Event] = [AccountWarned(warning_id=50, account_id=7, warning_json="{}"),
                           FollowCreated(follower_id=7, followee_id=BOB, notification_id=41)]
    assert warning_notifications(events) == [Notification(7, 50, MODERATION_WARNING, 7)]
    assert accepted_times(events)[50] == events[0].occurred_at
    assert event_key(events[0]) == b"7" and decode_event(encode_event(events[0])) == events[0]
    moment = 1_764_633_600_123
    warning = AccountWarning(id_from_ms(moment) | 3, 7, "silence", "Stop.", (77,), 40, BOB)
    shown = msgspec.json.decode(rendered(Notification(7, warning.id, MODERATION_WARNING, 7), b'{"id":"7"}', None,
                                         None, warning_entity(warning, b'{"id":"7"}')))
    assert shown["type"] == "moderation_warning" and "report" not in shown and shown["moderation_warning"] == {
        "id": str(warning.id), "action": "silence", "text": "Stop.", "status_ids": ["77"],
        "target_account": {"id": "7"}, "appeal": None, "created_at": "2025-12-02T00:00:00.123Z"}
    assert "by_account_id" not in shown["moderation_warning"]  # the moderator is never shown
