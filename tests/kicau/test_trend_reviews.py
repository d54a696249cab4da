"""Trends review's pure rules (kicau/trend_reviews.py): whether an item trends, what staff's listing adds, and a
page's id, which must name exactly its URL and nothing else."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kicau.trend_reviews import MAX_URL, Review, lets_trend, link_id, link_url, review_fields

REJECTED = Review(False, datetime(2026, 12, 7, tzinfo=UTC), 1)
APPROVED = Review(True, datetime(2026, 12, 7, tzinfo=UTC), 1)


def test_staff_verdict_wins_over_the_default() -> None:
    assert lets_trend(None, True) and not lets_trend(None, False)
    assert not lets_trend(REJECTED, True) and lets_trend(APPROVED, False)
    assert review_fields(None, False) == {"requires_review": True, "trendable": False}
    assert review_fields(APPROVED, False) == {"requires_review": False, "trendable": True}
    assert review_fields(REJECTED, True) == {"requires_review": False, "trendable": False}


@pytest.mark.parametrize("url", ["https://example.com/", "http://127.0.0.1:8000/a?run=1&x=%20y",
                                 "https://例え.jp/記事", "https://example.com/" + "a" * (MAX_URL - 20)])
def test_a_pages_id_names_its_url(url: str) -> None:
    made = link_id(url)
    assert "=" not in made and "/" not in made and "+" not in made
    assert link_url(made) == url


@pytest.mark.parametrize("link", ["", "not base64!", "ZnRwOi8vZXhhbXBsZS5jb20",  # ftp://example.com
                                  link_id("https://example.com/") + "=",  # padded: another spelling
                                  link_id("https://example.com/" + "a" * MAX_URL),  # too long
                                  "aHR0cHM6Ly9leGFtcGxlLmNvbS_-",  # decodes to bytes that are not UTF-8
                                  "é" * 8])
def test_what_names_no_page(link: str) -> None:
    assert link_url(link) is None
