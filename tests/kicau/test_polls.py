"""Polls' pure pieces (kicau/polls.py): a poll checked as Mastodon checks it, the Poll as each reader sees it,
finding and replacing it in a cached fragment, and the choices of a vote. End to end through the API:
tests/timeline/test_polls.py."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from kicau import polls
from kicau.entities import status_fragment
from kicau.web import ApiError

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def test_a_poll_is_checked_and_kept_as_asked() -> None:
    made = polls.definition([" tea ", "coffee"], "300", "true", False, now=NOW)
    assert made == polls.Definition(["tea", "coffee"], "2026-12-04T12:05:00.000Z", True, False)
    assert polls.read(polls.stored(made)) == made
    assert not made.expired(NOW) and made.expired(datetime(2026, 12, 4, 12, 5, tzinfo=UTC))
    for options, expires_in in ([["a"], 300], [["a", "a "], 300], [["a", "b"], 300.5], [["a", "b"], True]):
        with pytest.raises(ApiError):
            polls.definition(options, expires_in, now=NOW)
    assert polls.definition(["a", "A"], 300, now=NOW).options == ["a", "A"]  # case tells options apart


def test_the_poll_each_reader_sees() -> None:
    hidden = polls.Definition(["yes", "no"], "2026-12-04T13:00:00.000Z", False, True)
    tallies = polls.Tallies([2, 1], 3, [0])
    before = polls.entity(9, hidden, tallies, reader=5, author=7, now=NOW)
    assert [o["votes_count"] for o in before["options"]] == [None, None]
    assert (before["votes_count"], before["voters_count"], before["voted"], before["own_votes"]) == (3, 3, True, [0])
    after = polls.entity(9, hidden, tallies, now=datetime(2026, 12, 4, 14, tzinfo=UTC))
    assert [o["votes_count"] for o in after["options"]] == [2, 1] and after["expired"] is True
    assert "voted" not in after  # no one signed in
    assert polls.entity(9, hidden, polls.Tallies([0, 0], 0), reader=7, author=7, now=NOW)["voted"] is True


def test_a_cached_fragment_gives_its_poll_and_takes_the_live_one() -> None:
    made = polls.Definition(["left", 'say "poll":null,"card":'], "2030-01-01T00:00:00.000Z", True, True)
    row = {"id": 9, "created_at": NOW, "text": 'a "poll":{} here', "visibility": "public", "poll": polls.stored(made)}
    fragment = status_fragment(row, username="a", public_url="http://k")
    assert polls.definition_in(fragment) == made
    live = polls.encoded(polls.entity(9, made, polls.Tallies([1, 1], 1, [0, 1]), reader=5, now=NOW))
    shown = msgspec.json.decode(polls.with_poll(fragment, live))
    assert shown["poll"]["own_votes"] == [0, 1] and shown["content"] == msgspec.json.decode(fragment)["content"]
    plain = status_fragment({**row, "poll": None}, username="a", public_url="http://k")
    assert polls.poll_in(plain) is None and polls.with_poll(plain, live) == plain


def test_the_choices_of_a_vote() -> None:
    one = polls.Definition(["a", "b", "c"], "2026-12-04T13:00:00.000Z")
    several = polls.Definition(["a", "b", "c"], "2026-12-04T13:00:00.000Z", multiple=True)
    assert polls.choices_of(["2"], one) == [2] and polls.choices_of(1, one) == [1]
    assert polls.choices_of([2, "0"], several) == [0, 2]
    wrong: list[tuple[object, polls.Definition]] = [([0, 1], one), ([3], one), ([], one), (None, one), (["x"], one),
                                                    ([1, 1], several), ([True], one), ([-1], one)]
    for choices, poll in wrong:
        with pytest.raises(ApiError):
            polls.choices_of(choices, poll)
