"""``Feeds._ids_of``: a range reply held by the process-local copies is parsed once, and each page gets a list of
its own (pure logic: no engine involved; tests/kicau/test_feed_pages.py reads pages through the copies)."""

from __future__ import annotations

from typing import Any, cast

from kicau import feeds
from kicau.feeds import Feeds


def test_a_reply_is_parsed_once_and_an_equal_new_reply_again(monkeypatch: Any) -> None:
    timelines = Feeds(cast(Any, None), cap=800, ttl_seconds=3600, copies=cast(Any, object()))
    parsed: list[object] = []
    original = feeds.statuses_of

    def counting(members: Any) -> list[int]:
        parsed.append(members)
        return original(members)

    monkeypatch.setattr(feeds, "statuses_of", counting)
    reply = [b"30", b"20", b"10", b"0"]
    assert timelines._ids_of(reply) == [30, 20, 10]
    assert timelines._ids_of(reply) == [30, 20, 10]
    assert len(parsed) == 1
    changed = [b"40", b"30", b"20", b"10", b"0"]  # the timeline changed: the copies hold a new reply
    assert timelines._ids_of(changed) == [40, 30, 20, 10]
    assert len(parsed) == 2
    assert timelines._ids_of(None) == timelines._ids_of([]) == []


def test_the_parsed_replies_kept_are_bounded(monkeypatch: Any) -> None:
    monkeypatch.setattr(feeds, "_PARSED_KEPT", 3)
    timelines = Feeds(cast(Any, None), cap=800, ttl_seconds=3600, copies=cast(Any, object()))
    replies = [[b"%d" % n, b"0"] for n in range(1, 6)]
    for reply in replies:
        timelines._ids_of(reply)
    assert len(timelines._parsed) == 3
    assert timelines._parsed.sources() == replies[2:]
