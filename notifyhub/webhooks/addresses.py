"""Which addresses a webhook may reach: public ones, plus an explicit allow-list.

A tenant chooses its webhook URL, so without this it could make NotifyHub call into the
private network (SSRF): loopback, private ranges, link-local (cloud metadata at
169.254.169.254), multicast and reserved addresses are refused. The check runs when an
endpoint is saved and again at connection time, on the addresses the name resolves to
then (a name may be re-pointed after it was saved).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver


class AddressRefused(Exception):
    """The URL leads to an address webhooks may not reach; the message says which."""


def _forbidden(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


class AddressPolicy:
    def __init__(self, allowed: Iterable[str]) -> None:
        self._hosts = {entry for entry in allowed if not _is_network(entry)}
        self._networks = [
            ipaddress.ip_network(entry, strict=False) for entry in allowed if _is_network(entry)
        ]

    def host_allowed(self, host: str) -> bool:
        return host.lower() in self._hosts

    def check_address(self, host: str, address: str) -> None:
        ip = ipaddress.ip_address(address)
        if self.host_allowed(host) or any(ip in network for network in self._networks):
            return
        if _forbidden(ip):
            raise AddressRefused(f"{host} resolves to {address}, a private or reserved address")

    def check_url(self, url: str) -> None:
        """The URL's shape and, when its host is an IP address, the address itself."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AddressRefused("an http or https URL with a host is required")
        try:
            ipaddress.ip_address(parts.hostname)
        except ValueError:
            return
        self.check_address(parts.hostname, parts.hostname)

    async def check_resolved(self, url: str) -> None:
        """``check_url``, then every address the host resolves to now."""
        self.check_url(url)
        host = urlsplit(url).hostname or ""
        resolver = DefaultResolver()
        try:
            for found in await resolver.resolve(host, 0, socket.AF_UNSPEC):
                self.check_address(host, found["host"])
        except OSError as exc:
            raise AddressRefused(f"{host} does not resolve: {exc}") from None
        finally:
            await resolver.close()


def _is_network(entry: str) -> bool:
    try:
        ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False
    return True


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, keeping only the addresses the policy allows (checked at each
    connection, after DNS, so a re-pointed name cannot slip through)."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy
        self._resolver = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: Any = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._resolver.resolve(host, port, family)
        for result in found:
            try:
                self._policy.check_address(host, result["host"])
            except AddressRefused as exc:
                raise OSError(str(exc)) from None
        return found

    async def close(self) -> None:
        await self._resolver.close()
