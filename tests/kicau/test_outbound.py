"""Which addresses Kicau's outbound requests (web pushes, link previews) may reach (kicau/outbound.py)."""

from __future__ import annotations

import asyncio

import pytest

from kicau.outbound import PublicResolver, is_public, literal_host_problem


@pytest.mark.parametrize(("address", "public"), [
    ("8.8.8.8", True), ("2001:4860:4860::8888", True), ("::ffff:8.8.8.8", True),
    ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("255.255.255.255", False),
    ("::1", False), ("fd00::1", False), ("fe80::1%eth0", False), ("::ffff:127.0.0.1", False),
    ("64:ff9b::7f00:1", False), ("2002:7f00:1::", False), ("2002:0808:0808::", True),
    ("not an address", False),
])
def test_only_global_addresses_are_public(address: str, public: bool) -> None:
    assert is_public(address) is public


def test_literal_hosts_are_checked_and_names_are_left_to_the_resolver() -> None:
    assert literal_host_problem("http://127.0.0.1:8080/x") == "127.0.0.1 is not a public address"
    assert literal_host_problem("https://[::1]/x") == "::1 is not a public address"
    assert literal_host_problem("https://8.8.8.8/x") is None
    assert literal_host_problem("https://example.com/x") is None


def test_the_resolver_refuses_names_of_private_addresses() -> None:
    async def resolve(host: str) -> list[str]:
        resolver = PublicResolver()
        try:
            return [entry["host"] for entry in await resolver.resolve(host, 80)]
        finally:
            await resolver.close()

    for host in ("localhost", "127.0.0.1"):
        with pytest.raises(OSError, match="not public"):
            asyncio.run(resolve(host))


def test_the_push_sender_never_calls_a_private_address() -> None:
    """Outside development the push sender answers ``unsafe`` for an endpoint on a private address, by name or
    by number, before any connection (and its client would refuse to connect there anyway: the resolver above)."""
    from kicau.web_push import PushRequest
    from services.push.sender import Outcome, PushSender

    async def send(endpoint: str) -> Outcome:
        sender = PushSender(timeout=2, attempts=1, allow_insecure=False)
        try:
            return await sender.send(endpoint, PushRequest(body=b"", headers={}))
        finally:
            await sender.close()

    for endpoint in ("https://localhost:9/push", "https://127.0.0.1:9/push", "https://[::1]:9/push"):
        assert asyncio.run(send(endpoint)) is Outcome.UNSAFE, endpoint
