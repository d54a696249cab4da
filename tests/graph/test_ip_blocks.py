"""IP blocks against the running system (kicau/ip_blocks.py, services/graph/ip_blocks.py,
services/gateway/ip_blocks.py): an admin blocks a network through Mastodon's admin API, and within about a second
the gateway refuses every request from it (``no_access``: timelines, posting, the other routes, SSE and WebSocket
streams; never the operator's health routes) or its sign-ups only (``sign_up_block``); other addresses go on as
before; a block that expires stops applying and leaves the listing; only a role with ``manage_blocks`` and a token
with the scope may; bad input is a 4xx and changes nothing; Mastodon.py's methods work unchanged.

Clients bind distinct loopback addresses (127.x.y.z) to stand for distinct clients, as the rate limit tests do."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.conftest import User, eventually
from tests.graph.test_admin import NOT_ALLOWED, OUT_OF_SCOPE, admin_app, signed_in_client, staff  # noqa: F401
from tests.graph.test_email_domain_blocks import sign_up

BLOCKS = "/api/v1/admin/ip_blocks"
BLOCKED = {"error": "Blocked"}


def fresh_network() -> tuple[str, str, str]:
    """A /24 of loopback addresses no earlier run blocked, an address inside it and one just outside."""
    a, b = random.randint(1, 254), random.randint(1, 253)
    return f"127.{a}.{b}.0/24", f"127.{a}.{b}.{random.randint(2, 254)}", f"127.{a}.{b + 1}.{random.randint(2, 254)}"


@contextmanager
def client_from(gateway_url: str, address: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway_url, timeout=30,
                      transport=httpx.HTTPTransport(local_address=address)) as client:
        yield client


@contextmanager
def block_of(http: httpx.Client, auth: dict[str, str], **fields: Any) -> Iterator[dict[str, Any]]:
    """A block for the body of the ``with``, lifted after whatever happens (other tests come from loopback)."""
    made = http.post(BLOCKS, headers=auth, json=fields)
    assert made.status_code == 200, made.text
    try:
        yield dict(made.json())
    finally:
        http.delete(f"{BLOCKS}/{made.json()['id']}", headers=auth)


@pytest.fixture
def app_token(http: httpx.Client, app_credentials: dict[str, Any]) -> str:
    answer = http.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": app_credentials["client_id"],
        "client_secret": app_credentials["client_secret"], "scope": "read write"})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def test_no_access_refuses_every_request_from_the_network(
        http: httpx.Client, gateway_url: str, make_user: Callable[..., User], app_token: str,
        staff: Callable[[str, str], tuple[User, dict[str, str]]]) -> None:  # noqa: F811
    _, admin = staff("ipb_a", "Admin")
    user = make_user("ipb_u")
    network, inside, outside = fresh_network()
    ws_url = gateway_url.replace("http://", "ws://") + "/api/v1/streaming?stream=user"
    with client_from(gateway_url, inside) as blocked_client, client_from(gateway_url, outside) as other:
        assert blocked_client.get("/api/v1/timelines/home", headers=user.auth).status_code == 200
        with block_of(http, admin, ip=network, severity="no_access", comment="a botnet") as block:
            assert {k: block[k] for k in ("ip", "severity", "comment", "expires_at")} == {
                "ip": network, "severity": "no_access", "comment": "a botnet", "expires_at": None}
            assert block["created_at"].endswith("Z")
            eventually(lambda: blocked_client.get("/api/v1/timelines/home", headers=user.auth).status_code == 403)
            for method, path in [("GET", "/api/v1/timelines/home"), ("GET", "/api/v1/instance"),
                                 ("GET", f"/api/v1/accounts/{user.id}/statuses"),
                                 ("GET", "/api/v1/streaming/user"), ("GET", "/api/v1/timelines/public")]:
                answer = blocked_client.request(method, path, headers=user.auth)
                assert (answer.status_code, answer.json()) == (403, BLOCKED), (path, answer.text)
            posted = blocked_client.post("/api/v1/statuses", headers=user.auth, json={"status": "from a botnet"})
            assert (posted.status_code, posted.json()) == (403, BLOCKED)
            assert sign_up(blocked_client, app_token, f"ipb_{uuid.uuid4().hex[:8]}@example.test").status_code == 403
            with pytest.raises(InvalidStatus) as refused:
                connect(ws_url, additional_headers=user.auth, open_timeout=10, source_address=(inside, 0))
            assert refused.value.response.status_code == 403
            # The operator's routes stay open; another address is served as before, its stream too.
            assert blocked_client.get("/healthz").status_code == 200
            assert other.get("/api/v1/timelines/home", headers=user.auth).status_code == 200
            assert other.post("/api/v1/statuses", headers=user.auth, json={"status": "not blocked"}).status_code == 200
            with connect(ws_url, additional_headers=user.auth, open_timeout=10, source_address=(outside, 0)):
                pass
            assert [s["content"] for s in http.get(f"/api/v1/accounts/{user.id}/statuses").json()] == [
                "<p>not blocked</p>"]  # nothing of the refused post was written
        # Lifted: served again.
        eventually(lambda: blocked_client.get("/api/v1/timelines/home", headers=user.auth).status_code == 200)
        assert http.get(f"{BLOCKS}/{block['id']}", headers=admin).status_code == 404


def test_sign_up_block_refuses_only_sign_ups_and_expires(
        http: httpx.Client, gateway_url: str, make_user: Callable[..., User], app_token: str,
        staff: Callable[[str, str], tuple[User, dict[str, str]]]) -> None:  # noqa: F811
    _, admin = staff("ipb_s", "Admin")
    user = make_user("ipb_v")
    network, inside, outside = fresh_network()
    single = inside  # blocked alone first: an address is its own /32

    def signs_up(client: httpx.Client) -> int:
        return sign_up(client, app_token, f"ipb_{uuid.uuid4().hex[:8]}@example.test").status_code

    with client_from(gateway_url, inside) as blocked_client, client_from(gateway_url, outside) as other, \
            block_of(http, admin, ip=single, severity="sign_up_block") as block:
        assert block["ip"] == f"{single}/32"
        eventually(lambda: signs_up(blocked_client) == 403)
        refused = sign_up(blocked_client, app_token, "ipb_x@example.test")
        assert (refused.status_code, refused.json()) == (403, NOT_ALLOWED)
        # Everything else is served; other addresses sign up.
        assert blocked_client.get("/api/v1/timelines/home", headers=user.auth).status_code == 200
        assert signs_up(other) == 200
        # Widened to the /16 of both addresses, then made to expire in three seconds: it stops applying when it
        # lapses, and leaves the listing (Cassandra's TTL).
        wider = network.rsplit(".", 2)[0] + ".0.0/16"
        widened = http.put(f"{BLOCKS}/{block['id']}", headers=admin, json={"ip": wider, "comment": "wider"})
        assert widened.status_code == 200, widened.text
        assert (widened.json()["ip"], widened.json()["comment"], widened.json()["id"]) == (
            wider, "wider", block["id"])
        eventually(lambda: signs_up(other) == 403)
        expiring = http.put(f"{BLOCKS}/{block['id']}", headers=admin, data={"expires_in": "3"})
        assert expiring.status_code == 200 and expiring.json()["expires_at"] is not None, expiring.text
        assert expiring.json()["severity"] == "sign_up_block"  # what was not given is kept
        assert signs_up(other) == 403
        time.sleep(4)
        assert signs_up(other) == 200 and signs_up(blocked_client) == 200
        assert block["id"] not in [b["id"] for b in http.get(f"{BLOCKS}?limit=200", headers=admin).json()]


def test_bad_input_and_who_may(http: httpx.Client, make_user: Callable[..., User],
                               staff: Callable[[str, str], tuple[User, dict[str, str]]]) -> None:  # noqa: F811
    _, admin = staff("ipb_b", "Admin")
    _, moderator = staff("ipb_m", "Moderator")
    user = make_user("ipb_n")
    network, _, _ = fresh_network()
    before = http.get(f"{BLOCKS}?limit=200", headers=admin).json()
    with block_of(http, admin, ip=network, severity="sign_up_block", expires_in=3600) as block:
        expires = block["expires_at"]
        assert expires is not None and expires.endswith("Z"), block
        for body, message in [
            ({"severity": "no_access"}, "Validation failed: Ip can't be blank"),
            ({"ip": "  ", "severity": "no_access"}, "Validation failed: Ip can't be blank"),
            ({"ip": "999.1.1.1", "severity": "no_access"}, "Validation failed: Ip is invalid"),
            ({"ip": "spam.example", "severity": "no_access"}, "Validation failed: Ip is invalid"),
            ({"ip": "198.51.100.7"}, "Validation failed: Severity can't be blank"),
            ({"ip": "198.51.100.7", "severity": "ban"}, "Validation failed: Severity is not included in the list"),
            ({"ip": network, "severity": "no_access"}, "Validation failed: Ip has already been taken"),
            ({"ip": "198.51.100.7", "severity": "no_access", "expires_in": -5},
             "Validation failed: expires_in must be a number of seconds from 1 to 630720000"),
            ({"ip": "198.51.100.7", "severity": "no_access", "expires_in": "soon"},
             "Validation failed: expires_in must be a number of seconds from 1 to 630720000"),
            ({"ip": "198.51.100.7", "severity": "no_access", "comment": "x" * 2001},
             "Validation failed: comment is too long (at most 2000 characters)"),
        ]:
            answer = http.post(BLOCKS, headers=admin, json=body)
            assert (answer.status_code, answer.json()) == (422, {"error": message}), body
        changed = http.put(f"{BLOCKS}/{block['id']}", headers=admin, json={"severity": "bogus"})
        assert changed.status_code == 422, changed.text
        assert http.put(f"{BLOCKS}/123", headers=admin, json={"comment": "x"}).status_code == 404
        assert http.put(f"{BLOCKS}/abc", headers=admin, json={"comment": "x"}).status_code == 404
        # Who may: a moderator lacks manage_blocks; a token without the admin scopes is refused.
        for method, path in [("GET", BLOCKS), ("GET", f"{BLOCKS}/{block['id']}"), ("POST", BLOCKS),
                             ("PUT", f"{BLOCKS}/{block['id']}"), ("DELETE", f"{BLOCKS}/{block['id']}")]:
            as_moderator = http.request(method, path, headers=moderator, json={"ip": "198.51.100.8",
                                                                             "severity": "no_access"})
            assert (as_moderator.status_code, as_moderator.json()) == (403, NOT_ALLOWED), (method, path)
            as_user = http.request(method, path, headers=user.auth, json={"ip": "198.51.100.8",
                                                                        "severity": "no_access"})
            assert (as_user.status_code, as_user.json()) == (403, OUT_OF_SCOPE), (method, path)
        # Nothing of the above changed anything: the block is as made, and it is the only one added.
        assert http.get(f"{BLOCKS}/{block['id']}", headers=admin).json() == block
        after = http.get(f"{BLOCKS}?limit=200", headers=admin).json()
        assert [b["id"] for b in after] == [block["id"], *(b["id"] for b in before)]
    assert http.delete(f"{BLOCKS}/{block['id']}", headers=admin).status_code == 404


def test_mastodon_py_manages_ip_blocks(gateway_url: str, admin_app: dict[str, Any],  # noqa: F811
                                       staff: Callable[[str, str], tuple[User, dict[str, str]]]) -> None:  # noqa: F811
    owner, _ = staff("ipb_o", "Admin")
    client = signed_in_client(gateway_url, admin_app, owner)
    v6 = f"2001:db8:{random.randint(1, 0xffff):x}::/48"
    made = client.admin_create_ip_block(v6, "no_access", comment="via Mastodon.py", expires_in=600)
    try:
        assert (made.ip, made.severity, made.comment) == (v6, "no_access", "via Mastodon.py")
        assert made.expires_at is not None and made.created_at is not None
        assert client.admin_ip_block(made.id).id == made.id
        assert made.id in [b.id for b in client.admin_ip_blocks(limit=200)]
        changed = client.admin_update_ip_block(made.id, severity="sign_up_block")
        assert (changed.severity, changed.ip) == ("sign_up_block", v6)
    finally:
        client.admin_delete_ip_block(made.id)
    assert made.id not in [b.id for b in client.admin_ip_blocks(limit=200)]
