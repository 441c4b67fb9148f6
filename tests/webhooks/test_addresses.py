"""The webhook address policy and URL syntax: pure, no services."""

from __future__ import annotations

import ipaddress

import pytest
from yarl import URL

from notifyhub.webhooks.addresses import (
    NOT_PUBLIC,
    AddressPolicy,
    AddressRefused,
    GuardedResolver,
    InvalidUrl,
    is_public,
    parse_url,
)

REFUSED = {
    # IPv4 special-purpose registry, multicast and reserved
    "this network": "0.1.2.3",
    "unspecified": "0.0.0.0",
    "private 10/8": "10.20.30.40",
    "CGNAT": "100.64.0.1",
    "CGNAT top": "100.127.255.254",
    "loopback": "127.0.0.1",
    "loopback /8": "127.8.9.10",
    "link-local metadata": "169.254.169.254",
    "private 172.16/12": "172.31.255.1",
    "IETF protocol assignments": "192.0.0.9",
    "documentation TEST-NET-1": "192.0.2.10",
    "AS112-v4": "192.31.196.1",
    "AMT": "192.52.193.1",
    "6to4 relay anycast": "192.88.99.1",
    "private 192.168/16": "192.168.1.1",
    "AS112 direct delegation": "192.175.48.1",
    "benchmarking": "198.18.0.1",
    "benchmarking top": "198.19.255.255",
    "documentation TEST-NET-2": "198.51.100.7",
    "documentation TEST-NET-3": "203.0.113.7",
    "multicast": "224.0.0.1",
    "multicast top": "239.255.255.250",
    "reserved 240/4": "240.0.0.1",
    "limited broadcast": "255.255.255.255",
    # IPv6
    "v6 unspecified": "::",
    "v6 loopback": "::1",
    "IPv4-compatible (deprecated)": "::7f00:1",
    "IPv4-translated": "::ffff:0:7f00:1",
    "discard-only": "100::1",
    "NAT64 local-use": "64:ff9b:1::808:808",
    "Teredo": "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    "Teredo, private client": "2001:0:a00:1::",
    "benchmarking v6": "2001:2::1",
    "ORCHIDv2": "2001:20::1",
    "documentation v6": "2001:db8::1",
    "documentation 3fff::/20": "3fff::1",
    "AS112-v6 direct delegation": "2620:4f:8000::1",
    "SRv6 SIDs": "5f00::1",
    "unique local": "fd00::1",
    "unique local fc00": "fc00::1",
    "site-local (deprecated)": "fec0::1",
    "link-local v6": "fe80::1",
    "multicast v6": "ff02::1",
    "multicast v6 global scope": "ff0e::1",
    # IPv6 carrying a non-public IPv4 address
    "mapped loopback": "::ffff:127.0.0.1",
    "mapped metadata": "::ffff:169.254.169.254",
    "mapped CGNAT": "::ffff:100.64.0.1",
    "NAT64 loopback": "64:ff9b::7f00:1",
    "NAT64 private": "64:ff9b::a00:1",
    "NAT64 metadata": "64:ff9b::a9fe:a9fe",
    "6to4 metadata": "2002:a9fe:a9fe::",
    "6to4 loopback": "2002:7f00:1::",
    "6to4 private": "2002:c0a8:101::1",
    "6to4 CGNAT": "2002:6440:1::",
    "6to4 multicast": "2002:e000:1::",
}

PUBLIC = {
    "v4": "93.184.215.14",
    "v4 next to CGNAT": "100.128.0.1",
    "v4 next to private 172.16/12": "172.32.0.1",
    "v4 next to benchmarking": "198.20.0.1",
    "v4 last before multicast": "223.255.255.254",
    "v6": "2606:2800:21f:cb07:6820:80da:af6b:8b2c",
    "v6 Google": "2001:4860:4860::8888",
    "mapped public": "::ffff:8.8.8.8",
    "NAT64 public (DNS64 on an IPv6-only host)": "64:ff9b::808:808",
    "6to4 public": "2002:808:808::1",
}


@pytest.mark.parametrize("address", REFUSED.values(), ids=REFUSED.keys())
def test_special_purpose_addresses_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC.values(), ids=PUBLIC.keys())
def test_global_unicast_addresses_are_public(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address", ["fec0::1", "ff0e::1", "224.0.0.1", "64:ff9b:1::1", "2002:a9fe:a9fe::"]
)
def test_it_closes_the_gaps_of_pythons_is_global(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


def test_a_refusal_says_not_public_and_never_what_the_name_resolved_to() -> None:
    with pytest.raises(AddressRefused) as refused:
        AddressPolicy([]).check_address("hooks.example.com", "10.1.2.3")
    assert str(refused.value) == NOT_PUBLIC == "not a public address"
    assert "10.1.2.3" not in str(refused.value)


def test_allowed_hosts_and_networks_may_be_private() -> None:
    policy = AddressPolicy(["127.0.0.1", "10.0.0.0/8", "Hooks.Internal"])
    policy.check_address("127.0.0.1", "127.0.0.1")
    policy.check_address("anything", "10.9.8.7")
    policy.check_address("hooks.internal.", "192.168.1.1")
    with pytest.raises(AddressRefused):
        policy.check_address("127.0.0.2", "127.0.0.2")
    with pytest.raises(AddressRefused):
        policy.check_address("other.internal", "192.168.1.1")


def test_check_url_judges_an_ip_literal_and_leaves_names_to_resolution() -> None:
    policy = AddressPolicy([])
    with pytest.raises(AddressRefused):
        policy.check_url(URL("http://[::ffff:169.254.169.254]/latest"))
    with pytest.raises(AddressRefused):
        policy.check_url(URL("http://[2002:7f00:1::]/"))
    policy.check_url(URL("https://93.184.215.14/hook"))
    policy.check_url(URL("https://hooks.example.com/hook"))


async def test_check_resolved_refuses_a_name_that_resolves_to_loopback() -> None:
    with pytest.raises(AddressRefused) as refused:
        await AddressPolicy([]).check_resolved(URL("http://localhost:8080/hook"))
    assert str(refused.value) == NOT_PUBLIC


async def test_the_connection_resolver_refuses_a_name_that_resolves_to_loopback() -> None:
    resolver = GuardedResolver(AddressPolicy([]))
    try:
        with pytest.raises(AddressRefused):
            await resolver.resolve("localhost", 80)
    finally:
        await resolver.close()


async def test_the_connection_resolver_keeps_allowed_names() -> None:
    resolver = GuardedResolver(AddressPolicy(["localhost"]))
    try:
        found = await resolver.resolve("localhost", 80)
    finally:
        await resolver.close()
    assert found


LONG_LABEL = "a" * 64

INVALID_URLS = {
    "unclosed IPv6 bracket": ("http://[::1/", "not a valid URL"),
    "not IPv6 in brackets": ("http://[abc]/", "not a valid URL"),
    "label over 63 characters": (f"http://{LONG_LABEL}.example.com/", "longer than 63"),
    "name over 253 characters": ("http://" + "a." * 127 + "com/", "longer than 253"),
    "empty label": ("http://a..example/", "letters, digits and hyphens"),
    "leading hyphen": ("http://-a.example/", "letters, digits and hyphens"),
    "percent in host": ("http://ex%61mple.com/", "letters, digits and hyphens"),
    "zone id": ("http://[fe80::1%25eth0]/", "letters, digits and hyphens"),
    "port 0": ("http://example.com:0/", "port must be from 1 to 65535"),
    "port 99999": ("http://example.com:99999/", "not a valid URL"),
    "ftp": ("ftp://example.com/hook", "http or https"),
    "javascript": ("javascript:alert(1)", "http or https"),
    "no scheme": ("example.com/hook", "http or https"),
    "user and password": ("http://user:pass@example.com/", "user name or password"),
    "user only": ("https://user@example.com/", "user name or password"),
    "backslash authority": ("http://example.com\\@127.0.0.1/", "not a valid URL"),
    "over 2048 characters": ("https://example.com/" + "a" * 2048, "at most 2048"),
    "tab in host": ("http://exa\tmple.com/", "control characters"),
    "space": ("http://example.com/a b", "spaces"),
    "no host": ("http:///hook", "host"),
    "decimal IPv4": ("http://2130706433/", "may not end in a number"),
    "short IPv4": ("http://127.1/", "may not end in a number"),
    "hex IPv4": ("http://0x7f000001/", "may not end in a number"),
}


@pytest.mark.parametrize(("url", "problem"), INVALID_URLS.values(), ids=INVALID_URLS.keys())
def test_malformed_urls_are_refused_saying_why(url: str, problem: str) -> None:
    with pytest.raises(InvalidUrl) as invalid:
        parse_url(url)
    assert problem in str(invalid.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/notifyhub?team=ops",
        "http://example.com:8080/hook",
        "https://example.com:65535/",
        "https://example.com./hook",
        "https://xn--bcher-kva.de/hook",
        "https://bücher.de/hook",
        "http://93.184.215.14/hook",
        "http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]:8443/hook",
        "https://" + "a" * 63 + ".example.com/",
        "https://my_service.example.com/",
    ],
)
def test_well_formed_urls_parse(url: str) -> None:
    assert parse_url(url).scheme in ("http", "https")
