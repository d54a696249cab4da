"""``kicau.hot_routes.query_items`` reads a query string as ``urllib.parse.parse_qsl`` does (blank values kept),
including when it takes its shortcut for strings with nothing to decode (pure logic: no engine involved)."""

from __future__ import annotations

import random
from urllib.parse import parse_qsl

from kicau.hot_routes import query, query_items


def test_query_strings_are_read_as_parse_qsl_reads_them() -> None:
    rng = random.Random(3)
    alphabet = "ab=&;x1\xe9 \t%+"
    compared = 0
    for _ in range(50_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        try:
            expected = parse_qsl(text, keep_blank_values=True)
        except ValueError:
            continue
        assert query_items({"query_string": text.encode("latin-1")}) == expected, text
        compared += 1
    assert compared > 40_000


def test_a_page_query() -> None:
    scope = {"query_string": b"limit=20&max_id=113456789012345678&since_id=&limit=40&flag"}
    assert query_items(scope) == [("limit", "20"), ("max_id", "113456789012345678"), ("since_id", ""),
                                  ("limit", "40"), ("flag", "")]
    assert query(scope) == {"limit": "40", "max_id": "113456789012345678", "since_id": "", "flag": ""}
    assert query_items({"query_string": b"q=a%20b+c&x=%E2%9C%93"}) == [("q", "a b c"), ("x", "\u2713")]
    assert query_items({"query_string": b""}) == query_items({}) == []
