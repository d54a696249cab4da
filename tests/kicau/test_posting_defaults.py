"""Posting defaults as pure logic (kicau/posting_defaults.py): what a request leaves out comes from the defaults,
what it says stays; the values update_credentials may set, and the columns they are written to."""

from __future__ import annotations

import pytest

from kicau import posting_defaults
from kicau.posting_defaults import MASTODON, PostingDefaults, applied, checked, of_row, preferences, source
from kicau.web import ApiError

SET = PostingDefaults(privacy="private", sensitive=True, language="de", quote_policy="followers")


def test_what_a_request_leaves_out_comes_from_the_defaults() -> None:
    assert applied(SET, visibility=None, sensitive=None, language=None, quote_policy=None) == (
        "private", True, "de", "followers")
    assert applied(SET, visibility="public", sensitive=False, language="en", quote_policy="nobody") == (
        "public", False, "en", "nobody")
    # Mastodon's own defaults leave the quote policy unset in the row (what the visibility allows).
    assert applied(MASTODON, visibility=None, sensitive=None, language=None, quote_policy=None) == (
        "public", False, None, None)


def test_the_values_update_credentials_may_set() -> None:
    assert checked({"privacy": "unlisted", "sensitive": "1", "language": "FI", "quote_policy": "nobody"}) == {
        "posting_privacy": "unlisted", "posting_sensitive": True, "posting_language": "fi",
        "posting_quote_policy": "nobody"}
    assert checked({"sensitive": False, "language": ""}) == {"posting_sensitive": False, "posting_language": ""}
    assert checked({}) == {}
    for given in ({"privacy": "direct"}, {"privacy": 1}, {"sensitive": "maybe"}, {"sensitive": 2},
                  {"sensitive": [True]}, {"language": "xx"}, {"language": 5}, {"quote_policy": "friends"}):
        with pytest.raises(ApiError) as refused:
            checked(given)
        assert refused.value.status_code == 422 and refused.value.message.startswith("Validation failed: source[")


def test_read_back_from_the_row() -> None:
    assert of_row(None) == MASTODON and of_row({}) == MASTODON
    row = {column: None for column in posting_defaults.COLUMNS.values()}
    assert of_row(row) == MASTODON
    assert of_row({**row, "posting_language": "", "posting_privacy": "unlisted"}) == PostingDefaults(
        privacy="unlisted")
    assert source(SET) == {"privacy": "private", "sensitive": True, "language": "de", "quote_policy": "followers"}
    assert preferences(source(SET))["posting:default:visibility"] == "private"
    assert preferences({}) == preferences(source(MASTODON))
