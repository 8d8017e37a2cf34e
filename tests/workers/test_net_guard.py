"""The address policy for client-named URLs: what is public, and what an operator may open."""

from __future__ import annotations

import ipaddress

import pytest

from workers.net_guard import AddressPolicy, is_public, parse_address

REFUSED = [
    # IPv4: loopback, RFC 1918, link-local (cloud metadata), CGNAT, unspecified, this network,
    # broadcast, reserved, multicast, IETF protocol space, benchmarking, documentation
    "127.0.0.1",
    "127.255.255.254",
    "10.0.0.1",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",
    "169.254.0.1",
    "100.64.0.1",
    "100.127.255.254",
    "0.0.0.0",
    "0.1.2.3",
    "255.255.255.255",
    "240.0.0.1",
    "224.0.0.1",
    "239.255.255.250",
    "192.0.0.1",
    "198.18.0.1",
    "192.0.2.1",
    # IPv6: loopback, unspecified, ULA, link-local, site-local, multicast, documentation,
    # Teredo, discard-only, unassigned space
    "::1",
    "::",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "fe80::1%eth0",
    "fec0::1",
    "ff02::1",
    "ff0e::1",
    "2001:db8::1",
    "2001::1",
    "100::1",
    "4000::1",
    # IPv6 carrying IPv4: mapped, IPv4-compatible, NAT64, local-use NAT64, 6to4
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:10.0.0.1",
    "::127.0.0.1",
    "::8.8.8.8",
    "64:ff9b::7f00:1",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b:1::808:808",
    "2002:7f00:1::1",
    "2002:a00:1::1",
    "2002:a9fe:a9fe::1",
]
PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.215.14",
    "2606:4700:4700::1111",
    "2a00:1450:4001::200e",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
    "2002:808:808::1",
]


@pytest.mark.parametrize("text", REFUSED)
def test_non_public_addresses_are_refused(text):
    address = parse_address(text)
    assert address is not None
    assert not is_public(address)
    assert not AddressPolicy().allows("example.com", address)


@pytest.mark.parametrize("text", PUBLIC)
def test_public_unicast_addresses_pass(text):
    address = parse_address(text)
    assert address is not None
    assert is_public(address)
    assert AddressPolicy().allows("example.com", address)


def test_the_python_tables_alone_would_let_some_through():
    """What the module adds on top of `is_global`: without it these would be fetched."""
    for text in ("224.0.0.1", "ff0e::1", "::127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::1"):
        assert ipaddress.ip_address(text).is_global, text
        assert not is_public(ipaddress.ip_address(text)), text


def test_allowed_networks_open_their_addresses_and_nothing_else():
    policy = AddressPolicy.of([], ["10.20.0.0/16", "fd12::/64"])
    assert policy.allows("x", ipaddress.ip_address("10.20.3.4"))
    assert policy.allows("x", ipaddress.ip_address("::ffff:10.20.3.4"))  # judged as IPv4
    assert policy.allows("x", ipaddress.ip_address("fd12::5"))
    assert not policy.allows("x", ipaddress.ip_address("10.21.0.1"))
    assert not policy.allows("x", ipaddress.ip_address("127.0.0.1"))
    assert not policy.allows("x", ipaddress.ip_address("fd13::5"))


def test_allowed_hosts_open_any_address_of_that_name_only():
    policy = AddressPolicy.of(["Images.Internal."], [])
    loopback = ipaddress.ip_address("127.0.0.1")
    assert policy.allows("images.internal", loopback)
    assert policy.allows("IMAGES.INTERNAL.", loopback)
    assert not policy.allows("other.internal", loopback)
    assert not policy.allows("images.internal.evil.com", loopback)


@pytest.mark.parametrize("text", ["0.0.0.0", "::", "::ffff:0.0.0.0", "224.0.0.1", "ff02::1"])
def test_no_allow_list_opens_unspecified_or_multicast_addresses(text):
    policy = AddressPolicy.of(["anything"], ["0.0.0.0/0", "::/0"])
    assert not policy.allows("anything", ipaddress.ip_address(text))


def test_policies_are_hashable_values():
    one = AddressPolicy.of(["a"], ["10.0.0.0/8"])
    assert one == AddressPolicy.of(["A"], ["10.0.0.0/8"])
    assert len({one, AddressPolicy.of(["a"], ["10.0.0.0/8"]), AddressPolicy()}) == 2
