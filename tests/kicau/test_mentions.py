"""Finding, rendering and reading back mentions (kicau/mentions.py), as pure logic. Resolving them against
accounts, and whom they let see a status, is tested on the running system (tests/timeline/test_mentions.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kicau.entities import status_fragment, text_to_html
from kicau.mentions import Mention, local_domains, mentioned_in, named

HERE = local_domains("https://kicau.test:8443")


def test_this_servers_domains_are_its_host_with_and_without_the_port() -> None:
    assert local_domains("https://kicau.test:8443") == {"kicau.test:8443", "kicau.test"}
    assert local_domains("http://Example.ORG") == {"example.org"}


@pytest.mark.parametrize(("text", "usernames"), [
    ("@alice hi", ["alice"]),
    ("hi @Alice, @bob! and @ALICE again", ["alice", "bob"]),  # lower-cased, each once, in order
    ("(@carol) [@dave] \"@erin\"", ["carol", "dave", "erin"]),
    ("@frank@kicau.test @gina@KICAU.test:8443", ["frank", "gina"]),  # this server, named in full
    ("@hank@elsewhere.example", []),  # another server's: Kicau does not federate
    ("mail@example.com, https://kicau.test/@ivan, a=@judy", []),  # an address, a URL, an attribute
    ("@kim_2.", ["kim_2"]),  # the full stop ends the sentence, not the name
    ("@ a lone at sign, @@, @", []),
    ("nobody at all", []),
])
def test_the_names_a_text_mentions(text: str, usernames: list[str]) -> None:
    assert named(text, HERE) == usernames


ALICE, BOB = Mention(7, "Alice"), Mention(8, "bob")


def link(mention: Mention) -> str:
    return (f'<span class="h-card" translate="no"><a href="https://kicau.test/@{mention.username}"'
            f' class="u-url mention">@<span>{mention.username}</span></a></span>')


def test_resolved_mentions_are_linked_and_everything_else_escaped() -> None:
    text = "<b>@alice</b> & @Bob\n@nobody @bob@elsewhere.example\n\n@ALICE@kicau.test"
    assert text_to_html(text, [ALICE, BOB], "https://kicau.test") == (
        f"<p>&lt;b&gt;{link(ALICE)}&lt;/b&gt; &amp; {link(BOB)}<br />@nobody @bob@elsewhere.example</p>"
        f"<p>{link(ALICE)}</p>")
    # Without mentions, exactly as before they were resolved.
    assert text_to_html("<i>@alice</i>\n\nx") == "<p>&lt;i&gt;@alice&lt;/i&gt;</p><p>x</p>"


def test_a_status_lists_its_mentions_and_they_read_back_from_its_json() -> None:
    row = {"id": 42, "account_id": 1, "text": "@alice @bob", "created_at": datetime(2026, 12, 2, tzinfo=UTC),
           "mentions": [(7, "Alice"), (8, "bob")]}  # as Cassandra returns the column
    fragment = status_fragment(row, username="someone", public_url="https://kicau.test")
    assert b'"mentions":[{"id":"7","username":"Alice","url":"https://kicau.test/@Alice","acct":"Alice"},' in fragment
    assert mentioned_in(fragment) == {7, 8}
    assert mentioned_in(memoryview(b"\0" * 9 + fragment)[9:]) == {7, 8}
    sly = {**row, "mentions": None, "text": '"mentions":[{"id":"3"}]'}  # stored with none (a null column)
    assert mentioned_in(status_fragment(sly, username="someone", public_url="https://kicau.test")) == set()
    assert mentioned_in(b'{"id":"1"}') == set()  # rendered before mentions were
