"""E-mail domain blocks as pure logic (kicau/email_domain_blocks.py, services/graph/email_blocks.py): which domains
a block may name, which blocks an address meets, the history's days, and the pages of a listing; an address's
canonical form (kicau/canonical_email_blocks.py). Blocking and
refusing sign-ups run against the real system in tests/graph/test_email_domain_blocks.py."""

from __future__ import annotations

import hashlib

from kicau.canonical_email_blocks import CanonicalEmailBlock, canonical_email, canonical_hash
from kicau.canonical_email_blocks import entity as canonical_entity
from kicau.email_domain_blocks import (
    EmailDomainBlock,
    day_of,
    domains_of,
    entity,
    normalized_domain,
    refusal_commands,
    refusing,
)
from services.graph.admin import Cursors
from services.graph.email_blocks import window


def test_the_domains_a_block_may_name() -> None:
    assert normalized_domain(" Spam.Example. ") == "spam.example"
    assert normalized_domain("xyz") == "xyz"  # a whole top-level domain is the operator's to block
    assert normalized_domain("bücher.example") == "xn--bcher-kva.example"
    assert normalized_domain("a-b.c0.example") == "a-b.c0.example"
    for bad in ("", " ", ".", "a..b", "-a.example", "a-.example", "a b.example", "a_b.example", "a@b.example",
                "a" * 64 + ".example", ".".join(["a" * 60] * 5), "exa\x00mple.com", "*.example"):
        assert normalized_domain(bad) is None, bad


def test_an_address_meets_the_blocks_of_its_domain_and_those_above() -> None:
    assert domains_of("Someone@Mail.Spam.Example") == ["mail.spam.example", "spam.example", "example"]
    assert domains_of("a@b") == ["b"]
    assert domains_of("no-domain@") == [] and domains_of("x@a..b") == []


def test_the_history_and_the_entity() -> None:
    assert day_of(86_400 * 3 + 5) == 86_400 * 3
    packed = refusal_commands("spam.example", "A@Spam.Example", now=86_400 * 3 + 5)
    assert b"email_block:{d:spam.example}:259200:uses" in packed[0] and b"a@spam.example" in packed[2]
    block = EmailDomainBlock(115_000_000_000_000_000, "spam.example")
    shown = entity(block, [])
    assert shown["id"] == str(block.id) and shown["domain"] == "spam.example" and shown["created_at"].endswith("Z")
    assert shown["allow_with_approval"] is False


def test_a_block_that_refuses_prevails_over_one_that_holds_for_approval() -> None:
    holding, refusing_parent = EmailDomainBlock(2, "mail.example", True), EmailDomainBlock(1, "example")
    assert refusing([holding, refusing_parent]) == refusing_parent  # the most specific that refuses
    assert refusing([holding]) is None  # held, not refused
    assert refusing([EmailDomainBlock(3, "a.mail.example"), holding]) == EmailDomainBlock(3, "a.mail.example")
    assert refusing([]) is None


def test_a_listing_pages_newest_first() -> None:
    blocks = [EmailDomainBlock(i, f"d{i}.example") for i in (50, 40, 30, 20, 10)]

    def ids(cursors: Cursors, limit: int = 2) -> list[int]:
        return [b.id for b in window(blocks, cursors, limit)]

    assert ids(Cursors()) == [50, 40]
    assert ids(Cursors(max_id=40)) == [30, 20]
    assert ids(Cursors(max_id=20)) == [10]
    assert ids(Cursors(min_id=10)) == [30, 20]  # the oldest above it, newest first
    assert ids(Cursors(since_id=10)) == [50, 40]  # the newest above it
    assert ids(Cursors(max_id=50, since_id=30)) == [40]
    assert ids(Cursors(), 200) == [50, 40, 30, 20, 10]


def test_an_address_in_its_canonical_form() -> None:
    """Mastodon's: lower case, no dots in the local part, nothing after a ``+``; only its SHA-256 is kept."""
    assert canonical_email(" J.Doe+spam@Mail.Example ") == "jdoe@mail.example"
    assert canonical_email("a.b.c@x.example") == canonical_email("ABC+1+2@X.example") == "abc@x.example"
    assert canonical_hash("J.Doe+x@mail.example") == hashlib.sha256(b"jdoe@mail.example").hexdigest()
    assert canonical_hash("jdoe@mail.example") != canonical_hash("jdoe@other.example")
    block = CanonicalEmailBlock(7, canonical_hash("jdoe@mail.example"))
    assert canonical_entity(block) == {"id": "7", "canonical_email_hash": block.canonical_email_hash}
