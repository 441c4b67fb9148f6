"""Which URLs a webhook may be sent to: well-formed http(s) URLs whose host is, or resolves
to, a public address, plus the hosts and networks an operator allows.

A tenant chooses its webhook URL, so without this it could make NotifyHub call into the
private network (SSRF). Public means ordinary global unicast: every block of the IANA
IPv4 and IPv6 special-purpose address registries is refused (loopback, private, CGNAT,
link-local with the cloud metadata service at 169.254.169.254, documentation,
benchmarking, ...), as are multicast, reserved and unallocated space (all IPv6 outside
2000::/3, which takes in ULA, site-local fec0::/10 and the IPv4-compatible ::/96). An
IPv6 address that carries an IPv4 address (IPv4-mapped ::ffff:0:0/96, NAT64
64:ff9b::/96, 6to4 2002::/16) is judged by that IPv4 address, since that is where a
connection to it ends up.

Python's ``ipaddress.is_global`` is not enough on its own: on 3.11 it passes multicast,
fec0::/10, 64:ff9b:1::/48 and 6to4 addresses embedding 169.254.169.254.

URLs are parsed with yarl, the parser aiohttp sends with, so the host checked is the host
connected to. The check runs when an endpoint is saved and again at every connection: an
IP literal before the request (aiohttp does not resolve those), a name on every address
it resolves to then (a name may be re-pointed after it was saved). Refusals never say
what a name resolved to.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterable
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048
# Of a DNS name (RFC 1035): 253 characters written out, 63 per label.
MAX_HOST_LENGTH = 253
MAX_LABEL_LENGTH = 63
# Registering an endpoint waits this long for its name to resolve before refusing it.
RESOLVE_TIMEOUT_SECONDS = 5.0

NOT_PUBLIC = "not a public address"

# Letters, digits and inner hyphens (RFC 1123); underscores too, which resolvers accept.
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?")
# A last label like this makes the name an IPv4 address to resolvers ("127.1", "0x7f000001").
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")


def _networks(*blocks: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(block) for block in blocks)


# The IANA IPv4 Special-Purpose Address Registry, every block (even the few marked globally
# reachable, anycast services no webhook receiver lives on), plus multicast and reserved.
SPECIAL_PURPOSE_V4 = _networks(
    "0.0.0.0/8",  # "this network"
    "10.0.0.0/8",  # private
    "100.64.0.0/10",  # shared address space (carrier-grade NAT)
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link-local, cloud metadata services
    "172.16.0.0/12",  # private
    "192.0.0.0/24",  # IETF protocol assignments
    "192.0.2.0/24",  # documentation (TEST-NET-1)
    "192.31.196.0/24",  # AS112-v4
    "192.52.193.0/24",  # AMT
    "192.88.99.0/24",  # deprecated 6to4 relay anycast
    "192.168.0.0/16",  # private
    "192.175.48.0/24",  # AS112 direct delegation
    "198.18.0.0/15",  # benchmarking
    "198.51.100.0/24",  # documentation (TEST-NET-2)
    "203.0.113.0/24",  # documentation (TEST-NET-3)
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, and the limited broadcast address
)

# Global unicast: the only IPv6 space public hosts are numbered from.
GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")

# The IANA IPv6 Special-Purpose Address Registry's blocks inside 2000::/3 (6to4, 2002::/16,
# is judged by the IPv4 address it carries instead).
SPECIAL_PURPOSE_V6 = _networks(
    "2001::/23",  # IETF protocol assignments: Teredo, benchmarking, ORCHID, AMT, AS112...
    "2001:db8::/32",  # documentation
    "2620:4f:8000::/48",  # AS112 direct delegation
    "3fff::/20",  # documentation
)

# The NAT64 well-known prefix: the last 32 bits are the IPv4 address the gateway connects to.
NAT64_V6 = ipaddress.ip_network("64:ff9b::/96")


class InvalidUrl(ValueError):
    """The webhook URL is not one NotifyHub can send to; the message says what to fix."""


class AddressRefused(OSError):
    """The URL leads to an address webhooks may not reach.

    An ``OSError`` so that, raised by ``GuardedResolver``, aiohttp passes it on as the
    cause of its connection error (``ClientConnectorError.os_error``).
    """


def parse_url(raw: str) -> URL:
    """The webhook URL as aiohttp will send to it, or ``InvalidUrl`` saying what is wrong."""
    if len(raw) > MAX_URL_LENGTH:
        raise InvalidUrl(f"at most {MAX_URL_LENGTH} characters")
    # yarl silently drops tabs and newlines, so "exa\tmple.com" would become another host.
    if any(char.isspace() or not char.isprintable() for char in raw):
        raise InvalidUrl("may not contain spaces or control characters")
    try:
        url = URL(raw)
    except ValueError as exc:
        raise InvalidUrl(f"not a valid URL: {exc}") from None
    if url.scheme not in ("http", "https"):
        raise InvalidUrl("must be an http or https URL")
    if url.raw_user is not None or url.raw_password is not None:
        raise InvalidUrl("may not contain a user name or password")
    if not url.raw_host:
        raise InvalidUrl("must have a host")
    if url.explicit_port == 0:
        raise InvalidUrl("the port must be from 1 to 65535")
    _check_host(url.raw_host)
    return url


def _check_host(host: str) -> None:
    """An IP address without a zone, or a DNS name (IDNA-encoded by yarl already)."""
    if "%" not in host:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            return
    name = host.removesuffix(".")
    if len(name) > MAX_HOST_LENGTH:
        raise InvalidUrl(f"the host name is longer than {MAX_HOST_LENGTH} characters")
    labels = name.split(".")
    for label in labels:
        if len(label) > MAX_LABEL_LENGTH:
            raise InvalidUrl(f"a part of the host name is longer than {MAX_LABEL_LENGTH} characters")
        if not _LABEL.fullmatch(label):
            raise InvalidUrl(
                "the host must be a name of letters, digits and hyphens, between dots, or an IP address"
            )
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        raise InvalidUrl("the host name may not end in a number; write an IPv4 address as a.b.c.d")


def is_public(address: IPAddress) -> bool:
    """Whether ``address`` is ordinary global unicast, outside every special-purpose block."""
    if isinstance(address, ipaddress.IPv6Address):
        carried = _carried_ipv4(address)
        if carried is not None:
            return is_public(carried)
        if address not in GLOBAL_UNICAST_V6:
            return False
        return not any(address in network for network in SPECIAL_PURPOSE_V6)
    return not any(address in network for network in SPECIAL_PURPOSE_V4)


def _carried_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped, NAT64 or 6to4 address leads to."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64_V6:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


class AddressPolicy:
    """Public addresses only, except the hosts and networks the operator allows
    (``NOTIFYHUB_WEBHOOK_ALLOWED_HOSTS``, e.g. for a receiver on the development machine)."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self._hosts = {_host_key(entry) for entry in allowed if not _is_network(entry)}
        self._networks = [
            ipaddress.ip_network(entry, strict=False) for entry in allowed if _is_network(entry)
        ]

    def host_allowed(self, host: str) -> bool:
        return _host_key(host) in self._hosts

    def check_address(self, host: str, address: str) -> None:
        """``AddressRefused`` unless ``host`` may be reached at ``address``."""
        ip = ipaddress.ip_address(address)
        if self.host_allowed(host) or any(ip in network for network in self._networks):
            return
        if not is_public(ip):
            raise AddressRefused(NOT_PUBLIC)

    def check_url(self, url: URL) -> None:
        """When the URL's host is an IP address, the address itself (a name is checked
        when it resolves)."""
        host = url.raw_host or ""
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return
        self.check_address(host, host)

    async def check_resolved(self, url: URL) -> None:
        """``check_url``, then every address the host resolves to now."""
        self.check_url(url)
        host = url.raw_host or ""
        resolver = DefaultResolver()
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
                found = await resolver.resolve(host, 0, socket.AF_UNSPEC)
        except TimeoutError:
            raise InvalidUrl(f"{host} did not resolve within {RESOLVE_TIMEOUT_SECONDS:g} s") from None
        except OSError as exc:
            raise InvalidUrl(f"{host} does not resolve: {exc.strerror or exc}") from None
        finally:
            await resolver.close()
        for result in found:
            self.check_address(host, result["host"])


def _host_key(host: str) -> str:
    return host.lower().removesuffix(".")


def _is_network(entry: str) -> bool:
    try:
        ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False
    return True


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, refusing a name when any address it resolves to is refused
    (checked at each connection, after DNS, so a re-pointed name cannot slip through)."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy
        self._resolver = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: Any = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._resolver.resolve(host, port, family)
        for result in found:
            self._policy.check_address(host, result["host"])
        return found

    async def close(self) -> None:
        await self._resolver.close()
