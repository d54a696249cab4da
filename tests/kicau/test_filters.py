"""The pure parts of kicau/filters.py: keywords as Mastodon matches them, actions, contexts, expiry, the form readers
keep, and the ``filtered`` member spliced into a status."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from kicau.filters import (
    Filter,
    Keyword,
    ReaderFilters,
    StatusRule,
    decode,
    encode,
    filter_entity,
    searchable_text,
    text_of,
    v1_entities,
    with_results,
)


def _filter(fid: int, *words: tuple[str, bool], action: str = "warn", contexts: tuple[str, ...] = ("home",),
            statuses: tuple[int, ...] = (), expires_at: datetime | None = None) -> Filter:
    return Filter(fid, f"f{fid}", contexts, action, expires_at,
                  tuple(Keyword(fid * 10 + i, fid, word, whole) for i, (word, whole) in enumerate(words)),
                  tuple(StatusRule(fid * 100 + i, fid, s) for i, s in enumerate(statuses)))


def test_keywords_match_as_mastodon_matches_them() -> None:
    active = ReaderFilters([_filter(1, ("cat", True), ("c++", True), ("dog", False))]).in_context("home")
    assert active is not None and active.needs_text

    def words(text: str) -> list[str] | None:
        hide, results = active.results((5,), text)
        assert not hide
        return json.loads(results)[0]["keyword_matches"] if results else None

    assert words("A CAT sat") == ["cat"]  # any case
    assert words("concatenate") is None  # a whole word only
    assert words("I write C++ daily") == ["c++"]  # no \\b after a non-word character
    assert words("hotdogs") == ["dog"]  # not whole_word: anywhere
    assert words("nothing") is None
    assert searchable_text("<p>Tom &amp; Jerry<br>again</p>", "cw") == "cw\n\nTom & Jerry\nagain\n"
    # A poll's options are matched too (kicau/polls.py), as Mastodon's searchable_text has them.
    polled = json.dumps({"content": "<p>vote</p>", "spoiler_text": "", "poll": {"options": [{"title": "cats"},
                                                                                          {"title": "dogs"}]}})
    assert text_of(polled).endswith("vote\n\n\ncats\n\ndogs") and words(text_of(polled)) == ["dog"]


def test_actions_contexts_statuses_and_expiry() -> None:
    now = datetime.now(UTC)
    filters = ReaderFilters([
        _filter(1, ("spoiler", True)),
        _filter(2, ("taxes", True), action="hide", contexts=("home", "public")),
        _filter(3, statuses=(42,), contexts=("public",)),
        _filter(4, ("old", True), expires_at=now - timedelta(seconds=1)),
    ])
    home, public = filters.in_context("home"), filters.in_context("public")
    assert home is not None and public is not None and filters.in_context("thread") is None
    assert home.results((1,), "my taxes") == (True, None)
    assert home.results((1,), "an old spoiler")[1] is not None
    result = json.loads(home.results((1,), "an old spoiler")[1] or b"")
    assert [(r["filter"]["title"], r["keyword_matches"], r["status_matches"]) for r in result] == [
        ("f1", ["spoiler"], None)]  # f4 expired
    assert set(result[0]["filter"]) == {"id", "title", "context", "expires_at", "filter_action"}
    # A status rule matches the status or, for a reblog, the status it reblogs.
    assert json.loads(public.results((7, 42), "")[1] or b"")[0]["status_matches"] == ["42"]
    assert public.results((7,), "") == (False, None)
    assert ReaderFilters([]).in_context("home") is None


def test_the_form_readers_keep_and_the_entities() -> None:
    made = _filter(1, ("a", True), statuses=(9,), expires_at=datetime(2027, 1, 1, tzinfo=UTC))
    assert decode(encode([made])) == [made]
    entity = filter_entity(made)
    assert entity["keywords"] == [{"id": "10", "keyword": "a", "whole_word": True}]
    assert entity["statuses"] == [{"id": "100", "status_id": "9"}]
    assert v1_entities([entity]) == [{"id": "10", "phrase": "a", "context": ["home"], "whole_word": True,
                                      "expires_at": entity["expires_at"], "irreversible": False}]


def test_results_replace_the_empty_filtered_member() -> None:
    status = b'{"id":"1","reblog":{"id":"2","filtered":[]},"filtered":[]}'
    spliced = json.loads(with_results(status, b'[{"x":1}]'))
    assert spliced["filtered"] == [{"x": 1}] and spliced["reblog"]["filtered"] == []
    assert json.loads(with_results(b'{"id":"1"}', b"[]")) == {"id": "1", "filtered": []}
