"""Hashtags as pure logic (kicau/hashtags.py, kicau/entities.py, services/fanout/service.py): what the text
carries, how content links it, what a status's ``tags`` say, and which (hashtag, status) pairs a fanout batch
lists and unlists. Their timelines run against the real system in tests/timeline/test_tag_timeline.py."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from kicau import featured_tags, hashtags, tag_history
from kicau.entities import status_fragment, text_to_html
from kicau.events import Event, StatusCreated, StatusDeleted
from kicau.ids import id_from_ms
from kicau.tag_timeline import DAY_MS, day_of
from services.fanout.service import account_tag_changes, public_changes, tag_audiences, tag_changes, tag_followed

URL = "https://kicau.test"


@pytest.mark.parametrize(("text", "names"), [
    ("#kicau", ["kicau"]),
    ("Hello #Kicau and #kicau again", ["kicau"]),  # one hashtag, whatever the case
    ("x #Día_1. and #東京", ["día_1", "東京"]),
    ("#1a #12_3 #snake_case_", ["1a", "12_3", "snake_case_"]),
    ("#a·b #a·", ["a·b", "a"]),  # a separator inside a name, not at its end
    ("\uff03Full", ["full"]),  # the full-width number sign
    ("#ﬁne", ["fine"]),  # NFKC
    ("#123 a#b http://x/#frag (#paren) #·a #", []),  # no letter; not after whitespace; a separator first
    ("#" + "x" * 100 + " #" + "y" * 101, ["x" * 100]),  # longer than a hashtag's name can be
])
def test_the_hashtags_a_text_carries(text: str, names: list[str]) -> None:
    assert hashtags.names(text) == names


@pytest.mark.parametrize(("name", "valid"), [
    ("kicau", True), ("Día_1", True), ("東京", True), ("12_3", True),
    ("123", False), ("", False), ("a b", False), ("a#b", False), ("x" * 101, False), ("\u200b", False),
])
def test_which_names_are_hashtags(name: str, valid: bool) -> None:
    assert hashtags.valid(name) is valid


def test_hashtags_are_linked_as_mastodon_links_them() -> None:
    assert text_to_html("Hi #Kicau & <b>\n#東京 a#b", public_url=URL) == (
        '<p>Hi <a href="https://kicau.test/tags/kicau" class="mention hashtag" rel="tag">#<span>Kicau</span></a>'
        " &amp; &lt;b&gt;<br />"
        '<a href="https://kicau.test/tags/%E6%9D%B1%E4%BA%AC" class="mention hashtag" rel="tag">#<span>東京</span></a>'
        " a#b</p>")
    # Without the server's URL (an account's note) nothing is linked.
    assert text_to_html("#note") == "<p>#note</p>"


def test_a_status_lists_its_hashtags_and_a_reblog_none() -> None:
    row = {"id": 7, "text": "#One #two #ONE", "created_at": datetime.now(UTC)}
    status = msgspec.json.decode(status_fragment(row, username="ann", public_url=URL))
    assert status["tags"] == [{"name": "one", "url": f"{URL}/tags/one"}, {"name": "two", "url": f"{URL}/tags/two"}]
    reblog = msgspec.json.decode(status_fragment({**row, "reblog_of_id": 3}, username="ann", public_url=URL))
    assert reblog["tags"] == []


def created(status_id: int, tags: list[str], visibility: str = "public", reblog_of: int = 0) -> StatusCreated:
    return StatusCreated(status_id=status_id, account_id=1, status_json="{}", visibility=visibility, tags=tags,
                         reblog_of=reblog_of)


def test_a_batch_lists_its_public_tagged_statuses_and_unlists_deleted_ones() -> None:
    events: list[Event] = [
        created(10, ["a", "b"]), created(11, ["a"], "unlisted"), created(12, ["a"], "private"),
        created(13, []), created(16, [], reblog_of=10),
        created(14, ["a"]), StatusDeleted(status_id=14, account_id=1, tags=["a"]),  # both in the batch: neither
        StatusDeleted(status_id=5, account_id=1, tags=["c"]),
        StatusDeleted(status_id=6, account_id=1, visibility="unlisted", tags=["c"]),
    ]
    assert tag_changes(events, *public_changes(events)) == ([("a", 10), ("b", 10)], [("c", 5)])
    assert tag_changes([created(20, [])], [20], []) == ([], [])


def test_a_batch_goes_to_its_hashtags_followers_beyond_the_authors_audience() -> None:
    """Followed hashtags (kicau/tag_follows.py): public statuses and their deletions, never a reblog or one
    that is not public; each follower once, in the order first met, never the author nor the author's
    followers."""
    events: list[Event] = [
        created(10, ["a", "b"]), created(11, ["a"], "unlisted"), created(12, ["a"], "private"),
        created(13, []), StatusCreated(status_id=16, account_id=1, status_json="{}", tags=["a"], reblog_of=10),
        StatusDeleted(status_id=5, account_id=2, tags=["b"]),
        StatusDeleted(status_id=6, account_id=1, visibility="unlisted", tags=["a"]),
    ]
    statuses = tag_followed(events)
    assert [e.status_id for e in statuses] == [10, 5]
    followers = {"a": [7, 1, 8], "b": [8, 9, 2]}
    assert tag_audiences(statuses, followers, {1: [9]}) == {10: [7, 8, 2], 5: [8, 9]}
    assert tag_audiences(statuses, {"c": [7]}, {}) == {}  # no follower of theirs: no entry


def test_a_batch_records_its_authors_uses_of_hashtags() -> None:
    """Featured hashtags' counts (kicau/featured_tags.py): public and unlisted statuses, never a private or direct
    one, nor a reblog; one posted and deleted in the same batch is neither."""
    events: list[Event] = [
        created(10, ["a", "b"]), created(11, ["a"], "unlisted"), created(12, ["a"], "private"),
        created(13, ["a"], "direct"), StatusCreated(status_id=16, account_id=2, status_json="{}", tags=["a"],
                                                    reblog_of=10),
        created(14, ["a"]), StatusDeleted(status_id=14, account_id=1, tags=["a"]),
        StatusDeleted(status_id=5, account_id=1, visibility="unlisted", tags=["c"]),
        StatusDeleted(status_id=6, account_id=1, visibility="private", tags=["c"]),
    ]
    assert account_tag_changes(events) == ([(1, "a", 10), (1, "b", 10), (1, "a", 11)], [(1, "c", 5)])
    assert account_tag_changes([created(20, [])]) == ([], [])


def test_a_featured_tag_is_mastodons() -> None:
    status_id = id_from_ms(1_800_000_000_000)
    assert featured_tags.entity(7, "día", "ana", URL, 3, status_id) == {
        "id": "7", "name": "día", "url": f"{URL}/@ana/tagged/d%C3%ADa", "statuses_count": "3",
        "last_status_at": "2027-01-15"}
    assert featured_tags.entity(7, "x", "ana", URL, 0, None)["last_status_at"] is None
    # A later status's use is written with a later timestamp, whatever the order the writes arrive in.
    assert featured_tags.use_timestamp(id_from_ms(1_800_000_000_001)) > featured_tags.use_timestamp(status_id)


def test_statuses_fall_in_the_partition_of_their_day() -> None:
    start = 1_800_000_000_000 // DAY_MS * DAY_MS
    assert day_of(id_from_ms(start)) == day_of(id_from_ms(start + DAY_MS - 1)) == start // DAY_MS
    assert day_of(id_from_ms(start + DAY_MS)) == start // DAY_MS + 1


def test_a_tags_history_is_mastodons_strings_today_first() -> None:
    now_ms = 1_800_000_000_000
    days = tag_history.history_days(now_ms)
    assert days == [now_ms // DAY_MS - back for back in range(7)]
    counts = [3, 2] + [0, 0] * 6
    tag = tag_history.entity("kicau", URL, days, counts)
    history = [{"day": str(day * 86_400), "uses": str(counts[2 * i]), "accounts": str(counts[2 * i + 1])}
               for i, day in enumerate(days)]
    assert tag == {"name": "kicau", "url": f"{URL}/tags/kicau", "history": history}
    assert tag["history"][0] == {"day": str(now_ms // DAY_MS * 86_400), "uses": "3", "accounts": "2"}
    assert tag_history.entity("kicau", URL, days, counts, following=False)["following"] is False
    # The names into the index, once each; each use: its status and its account into their day's counts, both
    # kept past the history's week.
    packed = tag_history.count_commands([("kicau", id_from_ms(now_ms), 42), ("kicau", id_from_ms(now_ms) + 1, 43)])
    assert packed[0] == b"*4\r\n$4\r\nZADD\r\n$12\r\ntags:{names}\r\n$1\r\n0\r\n$5\r\nkicau\r\n"
    assert len(packed) == 9 and b"PFADD" in packed[1] and b"42" in packed[3] and b"691200" in packed[2]
    assert tag_history.count_commands([]) == []
