"""Which network addresses a worker may connect to for a URL a client named.

Pure policy, no I/O: workers/fetch_guard.py asks `AddressPolicy.allows` about every address it
would connect to (each one a host resolves to, each IP literal, on every redirect hop).

Public unicast addresses pass. The base is `ipaddress`'s `is_global` (IANA's special-purpose
registries: loopback, RFC 1918, link-local with 169.254.169.254, carrier-grade NAT
100.64.0.0/10, unspecified, reserved, broadcast, documentation, benchmarking, ULA fc00::/7,
link-local fe80::/10, Teredo ...). On top of it, because `is_global` alone lets them through:
- multicast (224.0.0.0/4, ff00::/8), which `is_global` counts as global;
- IPv6 outside 2000::/3, the only global unicast block: this takes the deprecated
  IPv4-compatible ::a.b.c.d (::/96), site-local fec0::/10 and unassigned space;
- IPv6 forms that carry an IPv4 address are judged by that address: IPv4-mapped
  ::ffff:0:0/96 (the kernel connects to the IPv4 address), NAT64 64:ff9b::/96 and 6to4
  2002::/16 (a translator or relay forwards to it).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import msgspec

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

_GLOBAL_UNICAST_V6 = IPv6Network("2000::/3")
_NAT64 = IPv6Network("64:ff9b::/96")


class AddressPolicy(msgspec.Struct, frozen=True):
    """Public addresses, plus what an operator allows (`switchboard_settings.media_fetch`).

    Hashable: one guarded HTTP session serves each distinct policy."""

    allow_hosts: frozenset[str] = frozenset()
    allow_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def of(cls, allow_hosts: Iterable[str], allow_networks: Iterable[str]) -> AddressPolicy:
        return cls(
            allow_hosts=frozenset(normal_host(host) for host in allow_hosts),
            allow_networks=tuple(ipaddress.ip_network(network) for network in allow_networks),
        )

    def allows(self, host: str, address: IPAddress) -> bool:
        """May a connection for a URL naming `host` go to `address`?"""
        address = _unmapped(address)
        if address.is_unspecified or address.is_multicast:
            return False  # never a destination: 0.0.0.0 and :: reach this very machine
        if is_public(address) or normal_host(host) in self.allow_hosts:
            return True
        return any(
            address.version == network.version and address in network
            for network in self.allow_networks
        )


def is_public(address: IPAddress) -> bool:
    """A public unicast address (see the module docstring for what counts)."""
    if isinstance(address, IPv6Address):
        if address.scope_id:
            return False  # only link-local and multicast addresses carry a zone
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public(embedded)
        if address not in _GLOBAL_UNICAST_V6:
            return False
    return address.is_global and not address.is_multicast


def parse_address(text: str) -> IPAddress | None:
    """`text` as an IP address (IPv6 without brackets, a zone allowed), or None."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def normal_host(host: str) -> str:
    """A host name as the allow list compares it: lowercase, without a root dot."""
    return host.rstrip(".").lower()


def _unmapped(address: IPAddress) -> IPAddress:
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour  # None outside 2002::/16
