"""Web addresses in statuses (kicau/links.py): where one starts and ends, how Mastodon links it, and the one a
preview card shows."""

from __future__ import annotations

import pytest

from kicau.entities import text_to_html
from kicau.links import addresses, first_address, link_html


@pytest.mark.parametrize(("text", "found"), [
    ("see https://example.com", ["https://example.com"]),
    ("see https://example.com.", ["https://example.com"]),
    ("(https://example.com/a_(b))", ["https://example.com/a_(b)"]),
    ("[https://example.com/x]", ["https://example.com/x"]),
    ("is it https://example.com/?q=1&r=2!?", ["https://example.com/?q=1&r=2"]),
    ("HTTP://EXAMPLE.COM/Path", ["HTTP://EXAMPLE.COM/Path"]),
    ("'https://example.com/it's'", ["https://example.com/it's"]),
    ("two: http://127.0.0.1:8080/p, https://ex.am/ple", ["http://127.0.0.1:8080/p", "https://ex.am/ple"]),
    ('"https://example.com/q"', ["https://example.com/q"]),
    ("https://example.com/<script>", ["https://example.com/"]),
    ("ftp://example.com javascript://x", []),
    ("word https:// alone, https://. and http:///path", []),
    ("glued:https://example.com a@https://example.com xhttps://example.com", []),
    ("no address at all", []),
])
def test_where_addresses_start_and_end(text: str, found: list[str]) -> None:
    assert [address for _, _, address in addresses(text)] == found
    for start, end, address in addresses(text):
        assert text[start:end] == address
    assert first_address(text) == (found[0] if found else None)


def test_an_address_is_linked_as_mastodon_links_it() -> None:
    assert link_html("https://example.com/a") == (
        '<a href="https://example.com/a" target="_blank" rel="nofollow noopener" translate="no">'
        '<span class="invisible">https://</span><span class="">example.com/a</span>'
        '<span class="invisible"></span></a>')
    long = "https://www.example.com/" + "x" * 40 + "?a=1&b=<2>"
    linked = link_html(long)
    assert linked.startswith('<a href="https://www.example.com/' + "x" * 40 + '?a=1&amp;b=&lt;2&gt;"')
    assert '<span class="invisible">https://www.</span>' in linked
    assert f'<span class="ellipsis">example.com/{"x" * 18}</span>' in linked
    assert f'<span class="invisible">{"x" * 22}?a=1&amp;b=&lt;2&gt;</span>' in linked


def test_statuses_link_addresses_beside_mentions_and_hashtags() -> None:
    html = text_to_html("#kicau at https://example.com/@alice/1#top.\nsee http://x.y/?a=<b>",
                        public_url="https://k.example")
    assert html.startswith('<p><a href="https://k.example/tags/kicau" class="mention hashtag" rel="tag">')
    assert '<a href="https://example.com/@alice/1#top" target="_blank"' in html
    assert ".<br />see " in html  # the full stop is the sentence's
    assert '<a href="http://x.y/?a=" target="_blank"' in html and "&lt;b&gt;</p>" in html
    # An address is never a mention or a hashtag, and text with none is as before.
    assert "mention" not in text_to_html("https://example.com/@alice #", public_url="https://k.example")
    assert text_to_html("plain & simple") == "<p>plain &amp; simple</p>"
