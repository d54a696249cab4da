"""The pure parts of kicau/filters.py: keywords as Mastodon matches them, actions, contexts, expiry, the form readers
keep, and the ``filtered`` member spliced into a status."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from kicau.filters import (
    Filter,
    Keyword,
    ReaderFilters,
    SearchableTexts,
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


def test_filters_in_a_context_are_compiled_once_until_one_expires() -> None:
    start = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    filters = ReaderFilters([
        _filter(1, ("cats", True)),
        _filter(2, ("dogs", True), expires_at=start + timedelta(minutes=10)),
        _filter(3, ("birds", True), expires_at=start + timedelta(minutes=20)),
    ])

    def matched(at: datetime) -> list[str]:
        active = filters.in_context("home", now=at)
        assert active is not None
        _, results = active.results((1,), "cats and dogs and birds")
        return [r["filter"]["title"] for r in json.loads(results or b"[]")]

    first = filters.in_context("home", now=start)
    assert filters.in_context("home", now=start + timedelta(minutes=9)) is first  # kept: nothing expired
    assert matched(start) == ["f1", "f2", "f3"]
    assert matched(start + timedelta(minutes=10)) == ["f1", "f3"]  # f2's expiry: compiled again
    assert filters.in_context("home", now=start + timedelta(minutes=10)) is not first
    assert matched(start + timedelta(minutes=25)) == ["f1"]
    kept = filters.in_context("home", now=start + timedelta(minutes=25))
    assert filters.in_context("home", now=start + timedelta(days=400)) is kept  # none left to expire
    assert filters.in_context("public", now=start) is None


def test_one_search_of_every_keyword_matches_as_each_keyword_alone() -> None:
    words = [("cat", True), ("c++", True), ("dog", False), ("a.b", True), ("(x)", False), ("Ünï", True)]
    one = ReaderFilters([_filter(1, *words)]).in_context("home")
    apart = [ReaderFilters([_filter(n, word)]).in_context("home") for n, word in enumerate(words, start=2)]
    texts = ["A CAT", "concatenate", "c++ and C++", "hotdogs", "a.b", "axb", "f(x)", "ünï!", "zünïz", ""]
    for text in texts:
        _, together = one.results((1,), text) if one is not None else (False, None)
        alone = [json.loads(results)[0]["keyword_matches"][0] for active in apart if active is not None
                 for _, results in [active.results((1,), text)] if results is not None]
        assert (json.loads(together)[0]["keyword_matches"] if together else []) == alone, text


def test_searchable_texts_are_derived_once_for_each_version_of_a_status() -> None:
    texts = SearchableTexts(max_entries=3)
    head = b"\x00\x01"
    first = head + json.dumps({"content": "<p>one &amp; two</p>", "spoiler_text": ""}).encode()
    assert texts.of(7, first, len(head)) == "\n\none & two\n"
    assert texts.of(7, first, len(head)) is texts.of(7, first, len(head))
    edited = head + json.dumps({"content": "<p>three</p>", "spoiler_text": "cw"}).encode()
    assert texts.of(7, edited, len(head)) == "cw\n\nthree\n"
    # The same status rendered whole (as a reblog shows it) is remembered apart from its cached value.
    rendered = json.dumps({"id": "7", "content": "<p>three</p>", "spoiler_text": "cw"}).encode()
    assert texts.of(7, rendered) == "cw\n\nthree\n"
    assert texts.of(7, edited, len(head)) == "cw\n\nthree\n"
    for status_id in (8, 9, 10):
        texts.of(status_id, rendered)
    assert len(texts._held) == 3
