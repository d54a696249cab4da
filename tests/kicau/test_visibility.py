"""The visibility rule (kicau/visibility.py) as pure logic, and reading it from rendered statuses."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kicau import visibility
from kicau.entities import status_fragment
from kicau.status_cards import cache_value
from kicau.status_tallies import QUOTED_BY_ANYONE
from kicau.visibility import ANONYMOUS, Reader

AUTHOR, FOLLOWER, STRANGER = 1, 2, 3


def fragment(text: str, shown: str | None, spoiler: str = "") -> bytes:
    row = {"id": 42, "account_id": AUTHOR, "text": text, "visibility": shown, "spoiler_text": spoiler,
           "created_at": datetime(2026, 12, 1, tzinfo=UTC)}
    return status_fragment(row, username="someone", public_url="https://kicau.test")


@pytest.mark.parametrize("shown", sorted(visibility.VISIBILITIES))
def test_the_visibility_is_read_from_the_rendered_status_whatever_its_text_says(shown: str) -> None:
    sly = '"visibility":"direct" "visibility":"public" \\"visibility\\":\\"private\\"'
    assert visibility.of_fragment(fragment(sly, shown, spoiler=sly)) == shown
    assert visibility.of_fragment(b"\0" * 8 + fragment("hi", shown), 8) == shown  # as cached: after the author id
    assert visibility.of_fragment(memoryview(fragment("hi", shown))) == shown


def test_a_status_stored_without_one_is_public() -> None:
    assert visibility.of_fragment(fragment("old", None)) == "public"
    assert visibility.of_fragment(b'{"id":"1"}') == "public"


def test_only_direct_statuses_stay_out_of_followers_timelines() -> None:
    assert [v for v in sorted(visibility.VISIBILITIES) if not visibility.reaches_followers(v)] == ["direct"]


@pytest.mark.parametrize(("shown", "seen_by"), [
    ("public", {"author", "follower", "stranger", "anonymous", "home", "mentioned", "mentioned follower"}),
    ("unlisted", {"author", "follower", "stranger", "anonymous", "home", "mentioned", "mentioned follower"}),
    ("private", {"author", "follower", "home", "mentioned", "mentioned follower"}),
    ("direct", {"author", "mentioned", "mentioned follower"}),
    # A value this code does not know is kept from everyone else, as a direct status.
    ("something new", {"author", "mentioned", "mentioned follower"}),
])
def test_who_may_see_what(shown: str, seen_by: set[str]) -> None:
    readers = {  # reader, follows the author, is mentioned
        "author": (Reader(AUTHOR), False, False),
        "follower": (Reader(FOLLOWER), True, False),
        "stranger": (Reader(STRANGER), False, False),
        "anonymous": (ANONYMOUS, False, False),
        "home": (Reader.home_of(FOLLOWER), False, False),  # a home timeline: its authors are followed by its reader
        "mentioned": (Reader(STRANGER), False, True),
        "mentioned follower": (Reader.home_of(FOLLOWER), False, True),
    }
    audience = visibility.audience(shown)
    assert {name for name, (reader, follows, mentioned) in readers.items()
            if visibility.may_see(audience, AUTHOR, reader, follows, mentioned)} == seen_by


def test_mentions_are_read_only_where_they_decide() -> None:
    asked = {(shown, name) for shown in sorted(visibility.VISIBILITIES)
             for name, reader in [("author", Reader(AUTHOR)), ("other", Reader(STRANGER)), ("anonymous", ANONYMOUS),
                                  ("home", Reader.home_of(STRANGER))]
             if visibility.needs_mentions(visibility.audience(shown), AUTHOR, reader)}
    assert asked == {("private", "other"), ("direct", "other"), ("direct", "home")}


def test_a_follow_is_asked_only_where_it_decides() -> None:
    asked = {(shown, name) for shown in sorted(visibility.VISIBILITIES)
             for name, reader in [("author", Reader(AUTHOR)), ("other", Reader(STRANGER)), ("anonymous", ANONYMOUS),
                                  ("home", Reader.home_of(STRANGER))]
             if visibility.needs_follow_check(visibility.audience(shown), AUTHOR, reader)}
    assert asked == {("private", "other")}


def test_cached_statuses_carry_their_audience() -> None:
    for shown in visibility.VISIBILITIES:
        value = cache_value(AUTHOR, fragment("hi", shown), favourites=3, replies=4, reblogs=5, reblog_of=6, root=2,
                            quoted=7)
        assert value[:8] == AUTHOR.to_bytes(8, "big") and value[8] == visibility.audience(shown)
        # favourites_count, replies_count, reblogs_count, quotes_count, the reblogged status, the thread's root and
        # the flags: no poll, no quote, quoted by anyone when its visibility lets it be (kicau/status_tallies.py)
        flags = QUOTED_BY_ANYONE if shown in ("public", "unlisted") else 0
        assert value[9:42] == (b"".join(n.to_bytes(4, "big") for n in (3, 4, 5, 7)) + (6).to_bytes(8, "big")
                               + (2).to_bytes(8, "big") + bytes([flags]))
        assert value[42:] == fragment("hi", shown)
