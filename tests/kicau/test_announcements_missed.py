"""What a gateway tells its user streams of the announcements once its channel is back after a loss
(kicau/announcements.py: ``told_of``, ``apply``, ``missed``): pure, on Announcement JSON as the graph service
renders it for no one in particular. The same end to end, with a real loss of the channel:
``tests/graph/test_announcements.py::test_user_streams_are_told_the_announcements_they_missed_while_the_channel_was_down``."""

from __future__ import annotations

import json

from kicau.announcements import Change, Told, apply, missed, told_of


def _shown(announcement_id: int, updated_at: str = "2026-12-06T10:00:00.000Z", **reactions: int) -> bytes:
    return json.dumps({"id": str(announcement_id), "content": "<p>hi</p>", "updated_at": updated_at, "read": False,
                       "reactions": [{"name": name, "count": count, "me": False}
                                     for name, count in reactions.items()]}).encode()


def test_what_the_streams_were_told_is_each_announcements_edit_and_reaction_counts() -> None:
    assert told_of([_shown(1, tada=2), _shown(2)]) == {1: Told("2026-12-06T10:00:00.000Z", {"tada": 2}),
                                                       2: Told("2026-12-06T10:00:00.000Z", {})}


def test_live_changes_keep_what_was_told_up_to_date() -> None:
    told = told_of([_shown(1, tada=2)])
    apply(told, Change("announcement", _shown(2, "2026-12-06T11:00:00.000Z").decode()))
    apply(told, Change("announcement.reaction", '{"name":"tada","count":3,"announcement_id":"1"}'))
    apply(told, Change("announcement.reaction", '{"name":"tada","count":1,"announcement_id":"9"}'))  # unknown: none
    assert told == {1: Told("2026-12-06T10:00:00.000Z", {"tada": 3}), 2: Told("2026-12-06T11:00:00.000Z", {})}
    apply(told, Change("announcement.delete", "1"))
    apply(told, Change("announcement.delete", "not an id"))  # unreadable: nothing learnt, nothing raised
    assert set(told) == {2}


def test_missed_changes_are_told_as_the_live_events_would_have_been() -> None:
    told = told_of([_shown(1, tada=2, fire=1), _shown(2), _shown(3), _shown(4, tada=1)])
    now = [_shown(1, tada=3), _shown(2, "2026-12-06T12:00:00.000Z"), _shown(4, tada=1), _shown(5)]
    changes = missed(told, now)
    assert changes == [
        Change("announcement.delete", "3"),  # taken down (or no longer shown)
        Change("announcement.reaction", '{"name":"fire","count":0,"announcement_id":"1"}'),  # taken back by all
        Change("announcement.reaction", '{"name":"tada","count":3,"announcement_id":"1"}'),
        Change("announcement", now[1].decode()),  # edited: the whole of it
        Change("announcement", now[3].decode()),  # new
    ]
    assert missed(told_of(now), now) == [], "nothing changed, nothing told"
