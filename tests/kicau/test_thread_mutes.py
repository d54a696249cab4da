"""Muted threads' pieces (kicau/thread_mutes.py, kicau/status_cards.py): the root a cached status carries,
``muted`` spliced into its fragment, and which notifications a batch keeps. End to end through the API:
tests/timeline/test_thread_mutes.py."""

from __future__ import annotations

import msgspec

from kicau.notifications import FAVOURITE, FOLLOW, MENTION, Notification
from kicau.status_cards import cache_value, shown_fragment, thread_of
from kicau.thread_mutes import unmuted
from tests.kicau.test_favourites import fragment


def test_a_cached_status_knows_its_threads_root() -> None:
    assert thread_of(5, cache_value(7, fragment())) == 5  # no root given: the status is its own
    assert thread_of(5, cache_value(7, fragment(), favourites=3, reblog_of=9, root=2)) == 2


def test_muted_is_spliced_in_and_nothing_else_moves() -> None:
    value = cache_value(7, fragment(), root=2)
    assert shown_fragment(value) == value[-len(fragment()):]  # the usual status: its cached bytes
    shown = msgspec.json.decode(bytes(shown_fragment(value, muted=True)))
    plain = msgspec.json.decode(fragment())
    assert shown["muted"] is True and plain["muted"] is False
    assert {k: v for k, v in shown.items() if k != "muted"} == {k: v for k, v in plain.items() if k != "muted"}


def test_notifications_about_a_muted_thread_are_dropped_for_its_muter_alone() -> None:
    notices = [
        Notification(1, 100, MENTION, 2, 10),  # about status 10, whose root is 3: muted by 1
        Notification(4, 101, MENTION, 2, 10),  # the same status, to someone who mutes nothing
        Notification(1, 102, FAVOURITE, 2, 3),  # the root itself (not in ``roots``: its own root)
        Notification(1, 103, FAVOURITE, 2, 11),  # another thread
        Notification(1, 104, FOLLOW, 2),  # about no status
    ]
    kept = unmuted(notices, {1: {3}}, {10: 3, 11: 11})
    assert [n.id for n in kept] == [101, 103, 104]
    assert unmuted(notices, {}, {}) == notices
