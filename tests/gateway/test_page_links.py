"""The ``Link`` header's pagination links (services/gateway/pagination.py), pure logic: the other parameters of
the request are kept, encoded as ``urlencode`` encodes them, its cursors replaced; ``next`` comes first."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from services.gateway.pagination import page_links

HOME = "/api/v1/timelines/home"


def _links(header: str) -> dict[str, list[tuple[str, str]]]:
    found = {}
    for part in header.split(", <"):
        target, _, rel = part.lstrip("<").partition(">; rel=")
        url = urlsplit(target)
        assert f"{url.scheme}://{url.netloc}{url.path}" == f"https://k.example{HOME}"
        found[rel.strip('"')] = parse_qsl(url.query, keep_blank_values=True)
    return found


def test_no_cursor_no_header() -> None:
    assert page_links("https://k.example", HOME, [("limit", "5")], None, None) is None
    assert page_links("https://k.example", HOME, [], "", "") is None


def test_a_page_without_other_parameters() -> None:
    header = page_links("https://k.example", HOME, [], "110", "120")
    assert header == (f'<https://k.example{HOME}?max_id=110>; rel="next", '
                      f'<https://k.example{HOME}?min_id=120>; rel="prev"')


@pytest.mark.parametrize("query", [
    [("limit", "40")],
    [("max_id", "9"), ("limit", "40"), ("since_id", "3"), ("min_id", "4")],
    [("only_media", "true"), ("tag", "a b&c=d"), ("tag", "ü/é"), ("empty", "")],
])
def test_other_parameters_are_kept_and_cursors_replaced(query: list[tuple[str, str]]) -> None:
    kept = [(k, v) for k, v in query if k not in ("max_id", "since_id", "min_id")]
    links = _links(page_links("https://k.example", HOME, query, "110", "120") or "")
    assert list(links) == ["next", "prev"]  # toot reads only the first link
    assert links["next"] == [*kept, ("max_id", "110")]
    assert links["prev"] == [*kept, ("min_id", "120")]


def test_a_cursor_that_is_not_digits_is_quoted() -> None:
    header = page_links("https://k.example", HOME, [], "a b&c", None)
    assert header == f'<https://k.example{HOME}?max_id=a+b%26c>; rel="next"'
    assert _links(header or "")["next"] == [("max_id", "a b&c")]
