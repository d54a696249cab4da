"""E-mail domain blocks against the running system (kicau/email_domain_blocks.py, services/graph/email_blocks.py):
an admin blocks a domain through Mastodon's admin API, sign-ups with its addresses (and its subdomains') are refused
with a 422 and leave nothing behind, each refusal counts in the block's history, the block lists, pages and lifts;
only a role with ``manage_blocks`` and a token with the scope may; bad input is a 4xx. A canonical e-mail block
(kicau/canonical_email_blocks.py) refuses one address however it is dressed up."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tests.conftest import User
from tests.graph.test_admin import (  # noqa: F401
    NOT_ALLOWED,
    OUT_OF_SCOPE,
    admin_app,
    next_link,
    signed_in_client,
    staff,
)
from tests.graph.test_admin import token as token_of

REFUSED = {"error": "Validation failed: Email uses a disallowed e-mail provider"}
BLOCKS = "/api/v1/admin/email_domain_blocks"


def sign_up(http: httpx.Client, app_token: str, email: str) -> httpx.Response:
    username = f"edb_{uuid.uuid4().hex[:10]}"
    return http.post("/api/v1/accounts", headers={"Authorization": f"Bearer {app_token}"}, data={
        "username": username, "email": email, "password": "correct horse battery staple", "agreement": "true",
        "locale": "en"})


@contextmanager
def blocked(http: httpx.Client, auth: dict[str, str], domain: str) -> Iterator[dict[str, Any]]:
    """A block of ``domain`` for the body of the ``with``, lifted after (other tests sign up freely)."""
    made = http.post(BLOCKS, headers=auth, data={"domain": domain})
    assert made.status_code == 200, made.text
    try:
        yield dict(made.json())
    finally:
        http.delete(f"{BLOCKS}/{made.json()['id']}", headers=auth)


def test_a_blocked_domain_refuses_sign_ups(http: httpx.Client, app_credentials: dict[str, Any],
                                            staff: Callable[[str, str], tuple[User, dict[str, str]]],  # noqa: F811
                                            ) -> None:
    _, admin = staff("edb_a", "Admin")
    app_token = http.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": app_credentials["client_id"],
        "client_secret": app_credentials["client_secret"], "scope": "read write"}).json()["access_token"]
    domain = f"spam-{uuid.uuid4().hex[:8]}.example"
    with blocked(http, admin, f"  {domain.upper()}. ") as block:
        assert block["domain"] == domain and block["created_at"].endswith("Z")
        assert [day["uses"] for day in block["history"]] == ["0"] * 7
        assert int(block["history"][0]["day"]) > int(block["history"][1]["day"])  # today first
        # The domain and those under it, in any case; not a domain that merely ends with the same letters.
        for email in (f"a@{domain}", f"B@MAIL.{domain.upper()}", f"c@x.y.{domain}"):
            assert sign_up(http, app_token, email).json() == REFUSED
        refused = sign_up(http, app_token, f"a@{domain}")
        assert refused.status_code == 422 and refused.json() == REFUSED
        assert sign_up(http, app_token, f"d@not{domain}").status_code == 200
        # The history counts the refusals and the different addresses (nothing else is kept of them: the address
        # signs up once the block is lifted, below).
        shown = http.get(f"{BLOCKS}/{block['id']}", headers=admin).json()
        assert shown["history"][0]["uses"] == "4" and shown["history"][0]["accounts"] == "3", shown
        again = http.post(BLOCKS, headers=admin, data={"domain": domain})
        assert again.status_code == 422 and again.json() == {
            "error": "Validation failed: Domain has already been taken"}
        # A subdomain may be blocked apart; the refusal counts against the most specific block.
        with blocked(http, admin, f"mail.{domain}") as inner:
            assert sign_up(http, app_token, f"e@mail.{domain}").status_code == 422
            assert http.get(f"{BLOCKS}/{inner['id']}", headers=admin).json()["history"][0]["uses"] == "1"
            assert http.get(f"{BLOCKS}/{block['id']}", headers=admin).json()["history"][0]["uses"] == "4"
            listed = http.get(f"{BLOCKS}?limit=2", headers=admin)
            assert [b["id"] for b in listed.json()] == [inner["id"], block["id"]], listed.json()
    # Lifted: the domain signs up again, and the block is gone.
    assert sign_up(http, app_token, f"a@{domain}").status_code == 200
    assert http.get(f"{BLOCKS}/{block['id']}", headers=admin).status_code == 404
    assert http.delete(f"{BLOCKS}/{block['id']}", headers=admin).status_code == 404


def test_blocks_page_and_check_who_may(http: httpx.Client, admin_app: dict[str, Any],  # noqa: F811
                                       staff: Callable[[str, str], tuple[User, dict[str, str]]],  # noqa: F811
                                       make_user: Callable[..., User]) -> None:
    admin_user, admin = staff("edb_p", "Admin")
    _, moderator = staff("edb_m", "Moderator")
    _, plain = staff("edb_n", "none")
    reader = token_of(http, admin_app, admin_user, "admin:read:email_domain_blocks")
    stem = uuid.uuid4().hex[:8]
    made = [http.post(BLOCKS, headers=admin, json={"domain": f"p{i}-{stem}.example"}).json() for i in range(5)]
    try:
        assert all("id" in block for block in made), made
        ids = [block["id"] for block in reversed(made)]  # newest first
        first = http.get(f"{BLOCKS}?limit=2", headers=reader)
        assert first.status_code == 200 and [b["id"] for b in first.json()] == ids[:2], first.json()
        following = next_link(first)
        assert following is not None and f"max_id={ids[1]}" in following
        second = http.get(f"{BLOCKS}?limit=2&max_id={ids[1]}", headers=reader)
        assert [b["id"] for b in second.json()] == ids[2:4]
        assert [b["id"] for b in http.get(f"{BLOCKS}?limit=2&min_id={ids[4]}", headers=reader).json()] == ids[2:4]
        assert [b["id"] for b in http.get(f"{BLOCKS}?limit=2&since_id={ids[4]}", headers=reader).json()] == ids[:2]
        # Who may: Mastodon's Moderator role lacks manage_blocks; a reading token may not write; no role, nothing.
        assert http.get(BLOCKS, headers=moderator).json() == NOT_ALLOWED
        assert http.post(BLOCKS, headers=moderator, data={"domain": f"m-{stem}.example"}).json() == NOT_ALLOWED
        assert http.post(BLOCKS, headers=reader, data={"domain": f"r-{stem}.example"}).json() == OUT_OF_SCOPE
        assert http.get(BLOCKS, headers=plain).json() == NOT_ALLOWED
        assert http.delete(f"{BLOCKS}/{ids[0]}", headers=plain).json() == NOT_ALLOWED
        assert http.get(BLOCKS, headers=make_user("edb_u").auth).status_code == 403
        # Bad input: a 4xx with Mastodon's error, and no block made.
        for body, error in (({}, "Validation failed: Domain can't be blank"),
                            ({"domain": "  "}, "Validation failed: Domain can't be blank"),
                            ({"domain": "not a domain"}, "Validation failed: Domain is invalid"),
                            ({"domain": "-bad-.example"}, "Validation failed: Domain is invalid"),
                            ({"domain": "a" * 64 + ".example"}, "Validation failed: Domain is invalid"),
                            ({"domain": f"x-{stem}.example", "allow_with_approval": "maybe"},
                             "Validation failed: allow_with_approval must be true or false")):
            answer = http.post(BLOCKS, headers=admin, data=body)
            assert answer.status_code == 422 and answer.json() == {"error": error}, (body, answer.text)
        assert http.post(BLOCKS, headers=admin, json={"domain": 7}).status_code == 422
        broken = http.post(BLOCKS, headers={**admin, "Content-Type": "application/json"}, content=b"{")
        assert broken.status_code == 400 and broken.json() == {"error": "The request body is not valid JSON"}
        assert http.get(f"{BLOCKS}/nope", headers=admin).status_code == 404
        assert http.get(f"{BLOCKS}?limit=many", headers=admin).json() == {"error": "limit must be an integer"}
        assert http.get(f"{BLOCKS}?max_id=x", headers=admin).status_code == 400
        assert len(http.get(f"{BLOCKS}?limit=0", headers=admin).json()) == 1  # clamped, as Mastodon clamps it
        assert len(http.get(f"{BLOCKS}?limit=200", headers=admin).json()) >= 5
        # An international domain is kept in its ASCII form.
        international = f"bücher-{stem}.example"
        with blocked(http, admin, international) as block:
            assert block["domain"] == international.encode("idna").decode() and block["domain"].startswith("xn--")
    finally:
        for block in made:
            if "id" in block:
                http.delete(f"{BLOCKS}/{block['id']}", headers=admin)


def test_mastodon_py_blocks_email_domains(gateway_url: str, http: httpx.Client,
                                          admin_app: dict[str, Any],  # noqa: F811
                                          staff: Callable[[str, str], tuple[User, dict[str, str]]],  # noqa: F811
                                          ) -> None:
    owner, _ = staff("edb_o", "Owner")
    client = signed_in_client(gateway_url, admin_app, owner)
    domain = f"py-{uuid.uuid4().hex[:8]}.example"
    made = client.admin_create_email_domain_block(domain)
    try:
        assert made.domain == domain
        assert str(client.admin_email_domain_block(made.id).id) == str(made.id)
        assert domain in {b.domain for b in client.admin_email_domain_blocks(limit=200)}
    finally:
        client.admin_delete_email_domain_block(made.id)
    assert domain not in {b.domain for b in client.admin_email_domain_blocks(limit=200)}


ADDRESSES = "/api/v1/admin/canonical_email_blocks"
TAKEN = {"error": "Validation failed: E-mail has already been taken"}


def test_a_blocked_address_cannot_sign_up_again(http: httpx.Client, app_credentials: dict[str, Any],
                                                admin_app: dict[str, Any],  # noqa: F811
                                                staff: Callable[[str, str], tuple[User, dict[str, str]]],  # noqa: F811
                                                ) -> None:
    admin_user, admin = staff("ceb_a", "Admin")
    _, moderator = staff("ceb_m", "Moderator")
    reader = token_of(http, admin_app, admin_user, "admin:read:canonical_email_blocks")
    app_token = http.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": app_credentials["client_id"],
        "client_secret": app_credentials["client_secret"], "scope": "read write"}).json()["access_token"]
    local = f"spam.mer{uuid.uuid4().hex[:6]}"
    address = f"{local}@mail.example"
    made = http.post(ADDRESSES, headers=admin, data={"email": f"{local.upper()}+tag@Mail.example"})
    assert made.status_code == 200, made.text
    block = made.json()
    try:
        assert block["canonical_email_hash"] == hashlib.sha256(
            f"{local.replace('.', '')}@mail.example".encode()).hexdigest()
        assert address not in made.text  # only the hash is kept
        # However it is dressed up, the address is answered as taken; another address is not.
        for email in (address, f"{local.replace('.', '')}+again@MAIL.example", f"{local}.@mail.example"):
            refused = sign_up(http, app_token, email)
            assert refused.status_code == 422 and refused.json() == TAKEN, (email, refused.text)
        assert sign_up(http, app_token, f"{local}@other.example").status_code == 200
        # Test, list, show; the same hash given as such is a 422; who may.
        assert http.post(f"{ADDRESSES}/test", headers=reader, data={"email": address}).json() == [block]
        assert http.post(f"{ADDRESSES}/test", headers=reader, data={"email": "x@y.example"}).json() == []
        assert block in http.get(f"{ADDRESSES}?limit=200", headers=reader).json()
        assert http.get(f"{ADDRESSES}/{block['id']}", headers=reader).json() == block
        again = http.post(ADDRESSES, headers=admin, json={"canonical_email_hash": block["canonical_email_hash"]})
        assert again.status_code == 422 and again.json() == {
            "error": "Validation failed: Canonical email hash has already been taken"}
        assert http.post(ADDRESSES, headers=reader, data={"email": "r@y.example"}).json() == OUT_OF_SCOPE
        assert http.get(ADDRESSES, headers=moderator).json() == NOT_ALLOWED
        assert http.delete(f"{ADDRESSES}/{block['id']}", headers=moderator).json() == NOT_ALLOWED
        for body, error in (({}, "Validation failed: Canonical email hash can't be blank"),
                            ({"canonical_email_hash": "abc"},
                             "Validation failed: Canonical email hash must be a SHA-256 in hex"),
                            ({"canonical_email_hash": "g" * 64},
                             "Validation failed: Canonical email hash must be a SHA-256 in hex")):
            answer = http.post(ADDRESSES, headers=admin, data=body)
            assert answer.status_code == 422 and answer.json() == {"error": error}, (body, answer.text)
        assert http.post(f"{ADDRESSES}/test", headers=reader, data={}).json() == {
            "error": "Validation failed: Email can't be blank"}
        # A hash given as such blocks the address it is of.
        other = f"other{uuid.uuid4().hex[:6]}@mail.example"
        by_hash = http.post(ADDRESSES, headers=admin, json={
            "canonical_email_hash": hashlib.sha256(other.encode()).hexdigest().upper()}).json()
        assert by_hash["canonical_email_hash"] == hashlib.sha256(other.encode()).hexdigest()
        assert sign_up(http, app_token, other).json() == TAKEN
        assert http.delete(f"{ADDRESSES}/{by_hash['id']}", headers=admin).json() == {}
        assert sign_up(http, app_token, other).status_code == 200
    finally:
        http.delete(f"{ADDRESSES}/{block['id']}", headers=admin)
    # Lifted: the address signs up.
    assert sign_up(http, app_token, address).status_code == 200
    assert http.get(f"{ADDRESSES}/{block['id']}", headers=admin).status_code == 404
