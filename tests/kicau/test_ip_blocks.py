"""IP blocks' pure parts (kicau/ip_blocks.py): what an ``ip`` names, and how a gateway's ``Blocklist`` matches
addresses by severity, IP version and prefix, and lets a lapsed block go."""

from __future__ import annotations

import ipaddress
import time
from datetime import UTC, datetime

from kicau.ids import id_from_ms
from kicau.ip_blocks import (
    NO_ACCESS,
    SIGN_UP_BLOCK,
    SIGN_UP_REQUIRES_APPROVAL,
    Blocklist,
    IpBlock,
    entity,
    parsed_network,
    requires_approval,
)


def test_what_an_ip_names() -> None:
    assert str(parsed_network(" 192.0.2.7 ")) == "192.0.2.7/32"
    assert str(parsed_network("10.1.2.3/8")) == "10.0.0.0/8"  # bits beyond the prefix dropped
    assert str(parsed_network("2001:DB8::1/32")) == "2001:db8::/32"
    assert str(parsed_network("::ffff:192.0.2.7")) == "192.0.2.7/32"  # IPv4 written inside IPv6
    assert str(parsed_network("::ffff:192.0.2.0/120")) == "192.0.2.0/24"
    for bad in ("", "999.1.1.1", "spam.example", "10.0.0.0/33", "1.2.3.4/-1", "::/129"):
        assert parsed_network(bad) is None, bad


def test_a_blocklist_matches_by_severity_and_prefix() -> None:
    net = ipaddress.ip_network
    blocks = Blocklist([(net("198.51.100.0/24"), NO_ACCESS, None), (net("203.0.113.7/32"), SIGN_UP_BLOCK, None),
                        (net("2001:db8::/32"), NO_ACCESS, None),
                        (net("192.0.2.0/24"), SIGN_UP_REQUIRES_APPROVAL, None)])
    assert len(blocks) == 3 and blocks.denying and blocks.refusing_sign_ups  # approval is never applied
    assert blocks.denies("198.51.100.255") and not blocks.denies("198.51.101.0")
    assert blocks.denies("::ffff:198.51.100.9")  # the same client over IPv6
    assert blocks.denies("2001:db8:ffff::1") and not blocks.denies("2001:db9::1")
    assert not blocks.denies("203.0.113.7") and blocks.refuses_sign_up("203.0.113.7")
    assert not blocks.refuses_sign_up("203.0.113.8") and not blocks.refuses_sign_up("192.0.2.1")
    assert blocks.refuses_sign_up("198.51.100.1")  # no access: no sign-up either
    assert not blocks.denies("testclient") and not blocks.denies("")  # no address names nothing
    empty = Blocklist()
    assert not empty.denying and not empty.refusing_sign_ups and not empty.denies("198.51.100.1")


def test_a_lapsed_block_stops_applying() -> None:
    net = ipaddress.ip_network
    soon = time.time() + 0.3
    blocks = Blocklist([(net("198.51.100.0/24"), NO_ACCESS, soon), (net("203.0.113.0/24"), NO_ACCESS, None),
                        (net("192.0.2.0/24"), NO_ACCESS, time.time() - 1)])
    assert blocks.denies("198.51.100.1") and not blocks.denies("192.0.2.1")  # lapsed before it was loaded
    time.sleep(0.35)
    assert not blocks.denies("198.51.100.1") and blocks.denies("203.0.113.1")
    lapsing = Blocklist([(net("198.51.100.0/24"), NO_ACCESS, time.time() + 0.1)])
    time.sleep(0.15)
    assert not lapsing.denies("198.51.100.1") and not lapsing.denying


def test_the_listing_a_gateway_loads_and_the_entity() -> None:
    loaded = Blocklist.of([{"ip": "198.51.100.0/24", "severity": "no_access", "expires_at": None},
                           {"ip": "nonsense", "severity": "no_access", "expires_at": None},
                           {"ip": "203.0.113.7/32", "severity": "sign_up_block", "expires_at": time.time() + 60}])
    assert len(loaded) == 2 and loaded.denies("198.51.100.3") and loaded.refuses_sign_up("203.0.113.7")
    moment = 1_764_633_600_123
    block = IpBlock(id_from_ms(moment) | 5, ipaddress.ip_network("192.0.2.7/32"), SIGN_UP_BLOCK, "spam",
                    datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert entity(block) == {"id": str(block.id), "ip": "192.0.2.7/32", "severity": "sign_up_block",
                             "comment": "spam", "created_at": "2025-12-02T00:00:00.123Z",
                             "expires_at": "2026-01-02T03:04:05.000Z"}
    assert block.seconds_left(datetime(2026, 1, 2, 3, 4, 0, tzinfo=UTC).timestamp()) == 5
    assert block.seconds_left(datetime(2027, 1, 1, tzinfo=UTC).timestamp()) == 1  # written lapsed: at once


def test_which_sign_ups_an_approval_block_holds() -> None:
    holding = IpBlock(1, ipaddress.IPv4Network("192.0.2.0/24"), SIGN_UP_REQUIRES_APPROVAL)
    refusing = IpBlock(2, ipaddress.IPv4Network("198.51.100.0/24"), SIGN_UP_BLOCK)
    v6 = IpBlock(3, ipaddress.IPv6Network("2001:db8::/32"), SIGN_UP_REQUIRES_APPROVAL)
    blocks = [holding, refusing, v6]
    assert requires_approval(blocks, "192.0.2.77")
    assert requires_approval(blocks, "::ffff:192.0.2.77")  # the IPv4 address written inside IPv6
    assert requires_approval(blocks, "2001:db8::1")
    assert not requires_approval(blocks, "198.51.100.7")  # another severity: the gateways refuse those
    assert not requires_approval(blocks, "192.0.3.1")
    for nothing in (None, "", "testclient", "192.0.2.0/24"):  # no single address: nothing names it
        assert not requires_approval(blocks, nothing), nothing
