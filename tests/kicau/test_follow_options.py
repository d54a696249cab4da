"""A follow's options as pure logic (kicau/follow_options.py, services/fanout/service.py, the gateway's flags): how
they change, which statuses they keep from whom, whom they notify, and how the fanout's copies follow the versions
of follower lists. Following with options runs against the real system in tests/graph/test_follow_options.py."""

from __future__ import annotations

import msgspec
import pytest

from kicau.events import StatusCreated
from kicau.follow_options import DEFAULT, FollowOptions, FollowOptionStore, KeptOptions, ListEntry, admitted
from kicau.notifications import STATUS, Notification
from kicau.web import ApiError
from services.fanout.service import narrowed_audiences, notified_from_options, status_notifications
from services.gateway.params import optional_flag

AUTHOR, QUIET, PICKY, NOSY, PLAIN = 1, 2, 3, 4, 5
FOLLOWERS = {AUTHOR: [QUIET, PICKY, NOSY, PLAIN]}
OPTIONS = {AUTHOR: {QUIET: FollowOptions(reblogs=False), PICKY: FollowOptions(languages=frozenset({"de"})),
                    NOSY: FollowOptions(notify=True)}}


def created(status_id: int, **fields: object) -> StatusCreated:
    return msgspec.convert({"status_id": status_id, "account_id": AUTHOR, "status_json": "{}", **fields},
                           StatusCreated)


def test_options_change_only_what_is_given() -> None:
    assert DEFAULT.default and not FollowOptions(notify=True).default
    changed = DEFAULT.changed(reblogs=False, notify=None, languages=["en", "de", "en"])
    assert changed == FollowOptions(reblogs=False, notify=False, languages=frozenset({"en", "de"}))
    assert changed.changed(reblogs=None, notify=True, languages=None) == FollowOptions(
        reblogs=False, notify=True, languages=frozenset({"en", "de"}))
    assert changed.changed(reblogs=None, notify=None, languages=[]).languages is None  # every language
    picky = FollowOptions(languages=frozenset({"de"}))
    assert picky.takes("de") and picky.takes("") and not picky.takes("en") and DEFAULT.takes("en")


def test_who_a_status_skips() -> None:
    reblog = created(10, reblog_of=99, reblog_author=7)
    english, german, plain = created(11, language="en"), created(12, language="de"), created(13)
    narrowed = narrowed_audiences([reblog, english, german, plain], FOLLOWERS, {}, OPTIONS)
    assert narrowed == {10: [AUTHOR, PICKY, NOSY, PLAIN], 11: [AUTHOR, QUIET, NOSY, PLAIN]}
    # With who hides the reblogged author too; a direct status is never narrowed here (it has its own audience).
    assert narrowed_audiences([reblog], FOLLOWERS, {7: {PLAIN}}, OPTIONS) == {10: [AUTHOR, PICKY, NOSY]}
    assert narrowed_audiences([created(14, language="en", visibility="direct")], FOLLOWERS, {}, OPTIONS) == {}


def test_whom_a_status_notifies() -> None:
    said, reply_to_self = created(20), created(21, in_reply_to_account=AUTHOR)
    events = [said, reply_to_self, created(22, reblog_of=99, reblog_author=7), created(23, in_reply_to_account=8),
              created(24, mentions=[NOSY]), created(25, visibility="direct", mentions=[NOSY])]
    assert status_notifications(events, FOLLOWERS, OPTIONS, {}) == [
        Notification(NOSY, 20, STATUS, AUTHOR, 20), Notification(NOSY, 21, STATUS, AUTHOR, 21)]
    # A status that mentions a follower who asked tells it of the status under an id of its own (the mention is
    # told apart, kicau/notifications.py); by an event without that id, only of the mention.
    assert status_notifications([created(27, mentions=[NOSY], status_notification_id=28)], FOLLOWERS, OPTIONS,
                                {}) == [Notification(NOSY, 28, STATUS, AUTHOR, 27)]
    assert status_notifications([created(29, mentions=[PLAIN], status_notification_id=30)], FOLLOWERS, OPTIONS,
                                {}) == [Notification(NOSY, 30, STATUS, AUTHOR, 29)]
    # Only a follower the status reaches: one it skips (its languages) is not told of it.
    picky_nosy = {AUTHOR: {NOSY: FollowOptions(notify=True, languages=frozenset({"de"}))}}
    english = created(26, language="en")
    narrowed = narrowed_audiences([english], FOLLOWERS, {}, picky_nosy)
    assert status_notifications([english], FOLLOWERS, picky_nosy, narrowed) == []


def test_whom_a_large_accounts_status_notifies() -> None:
    """A large author's followers are never read: those its options name with ``notify`` are told, unless they hide
    it or its notifications, or their languages skip the status."""
    german_nosy, muter = 6, 7
    options = {AUTHOR: {**OPTIONS[AUTHOR], german_nosy: FollowOptions(notify=True, languages=frozenset({"de"})),
                        muter: FollowOptions(notify=True)}}
    english, german, reblog = created(30, language="en"), created(31, language="de"), created(32, reblog_of=9,
                                                                                         reblog_author=8)
    hiding = {30: {muter}, 31: {muter}, 32: {muter}}
    assert status_notifications([english, german, reblog], {}, options, {}, hiding) == [
        Notification(NOSY, 30, STATUS, AUTHOR, 30),
        Notification(NOSY, 31, STATUS, AUTHOR, 31), Notification(german_nosy, 31, STATUS, AUTHOR, 31)]
    assert status_notifications([english], {}, {}, {}, hiding) == []  # no options: no one asked


def test_whom_a_direct_status_notifies() -> None:
    """As Mastodon's feed worker: a direct status tells the followers it mentions that asked (found from the
    options alone, its author's list unread), under the status notification's own id beside the mention; not one
    it does not mention, not one that hides the author, nor one whose languages skip it."""
    shy, german_nosy = 6, 7
    options = {AUTHOR: {**OPTIONS[AUTHOR], shy: FollowOptions(notify=True),
                        german_nosy: FollowOptions(notify=True, languages=frozenset({"de"}))}}
    to_all = created(40, visibility="direct", mentions=[NOSY, shy, german_nosy, PLAIN], language="en",
                     status_notification_id=41)
    unmentioned = created(42, visibility="direct", mentions=[PLAIN], status_notification_id=43)
    reply_elsewhere = created(44, visibility="direct", mentions=[NOSY], in_reply_to_account=8,
                              status_notification_id=45)
    events = [to_all, unmentioned, reply_elsewhere]
    assert notified_from_options(to_all, large=False) and not notified_from_options(reply_elsewhere, large=False)
    assert not notified_from_options(created(46), large=False) and notified_from_options(created(46), large=True)
    hiding = {40: {shy}, 42: set(), 44: set()}
    assert status_notifications(events, FOLLOWERS, options, {}, hiding) == [Notification(NOSY, 41, STATUS, AUTHOR, 40)]
    # Without the options-only audience (the fanout always gives it), a direct status tells no one.
    assert status_notifications(events, FOLLOWERS, options, {}) == []


class CountingStore(FollowOptionStore):
    def __init__(self) -> None:  # no Cassandra: reads are counted and answered from a dict
        self.reads: list[int] = []
        self.rows: dict[int, dict[int, FollowOptions]] = {AUTHOR: {NOSY: FollowOptions(notify=True)}}

    async def of_followee(self, followee_id: int) -> dict[int, FollowOptions]:
        self.reads.append(followee_id)
        return dict(self.rows.get(followee_id, {}))


async def test_the_fanouts_copies_follow_the_versions() -> None:
    store = CountingStore()
    kept = KeptOptions(store, max_followees=2)
    assert await kept.options({AUTHOR: b"t1", 6: b"t1"}) == {AUTHOR: {NOSY: FollowOptions(notify=True)}, 6: {}}
    assert await kept.options({AUTHOR: b"t1"}) == {AUTHOR: {NOSY: FollowOptions(notify=True)}}
    assert store.reads == [AUTHOR, 6]  # the second call read nothing
    store.rows[AUTHOR] = {}
    assert await kept.options({AUTHOR: b"t2"}) == {AUTHOR: {}}  # a new version: read again
    await kept.options({7: b"t1"})  # a third followee: the least recently used goes
    assert store.reads == [AUTHOR, 6, AUTHOR, 7]
    await kept.options({6: b"t1"})
    assert store.reads[-1] == 6


def test_the_gateways_flags() -> None:
    for value, flag in ((True, True), (0, False), ("YES", True), ("off", False), ("t", True)):
        assert optional_flag({"notify": value}, "notify") is flag
    assert optional_flag({}, "notify") is None
    for bad in ("perhaps", 2, 1.0, [True], {"a": 1}):
        with pytest.raises(ApiError) as raised:
            optional_flag({"notify": bad}, "notify")
        assert raised.value.status_code == 422


def test_a_follows_backfill_and_a_rebuild_leave_out_what_its_options_would() -> None:
    entries = [ListEntry(5, False, "en"), ListEntry(4, True, ""), ListEntry(3, False, "de"), ListEntry(2, False, ""),
               ListEntry(1, True, "")]
    assert admitted(entries, DEFAULT) == [5, 4, 3, 2, 1]
    assert admitted(entries, FollowOptions(reblogs=False)) == [5, 3, 2]
    assert admitted(entries, FollowOptions(languages=frozenset({"de"}))) == [4, 3, 2, 1]
