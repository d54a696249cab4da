"""The pure parts of where accounts sign in from (kicau/account_ips.py): the address a gateway passes, and the
partitions of ``accounts_by_ip`` an address or a network falls in."""

from __future__ import annotations

import ipaddress

from kicau.account_ips import bucket_of, buckets_of, client_address


def test_the_address_a_gateway_passes() -> None:
    assert client_address("203.0.113.9") == "203.0.113.9"
    assert client_address(" 2001:DB8::1 ") == "2001:db8::1"
    assert client_address("::ffff:203.0.113.9") == "203.0.113.9"  # an IPv4 client seen over IPv6
    for nothing in (None, "", "testclient", "203.0.113.0/24", "999.0.0.1"):
        assert client_address(nothing) is None, nothing


def test_the_partitions_of_addresses_and_networks() -> None:
    assert bucket_of("203.0.113.9") == "203.0.0.0/16"
    assert bucket_of("2001:db8:aaaa::1") == "2001:db8::/32"
    net = ipaddress.ip_network
    assert buckets_of(net("203.0.113.9/32")) == ["203.0.0.0/16"]
    assert buckets_of(net("203.0.0.0/16")) == ["203.0.0.0/16"]
    wider = buckets_of(net("203.0.0.0/15"))
    assert wider == ["203.0.0.0/16", "203.1.0.0/16"]
    eight = buckets_of(net("10.0.0.0/8"))
    assert eight is not None and len(eight) == 256 and eight[-1] == "10.255.0.0/16"
    assert buckets_of(net("10.0.0.0/7")) is None  # 512 partitions: too wide to read
    assert buckets_of(net("2001:db8:1:2::/64")) == ["2001:db8::/32"]
    v6 = buckets_of(net("2001:d00::/24"))
    assert v6 is not None and len(v6) == 256
    assert buckets_of(net("2001::/16")) is None
