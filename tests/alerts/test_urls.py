"""Which webhook URLs may be called: no internal address unless the operator allows it."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.alerts.urls import (
    PublicOnlyResolver,
    UrlRefused,
    address_allowed,
    check_url,
    refuse_internal_literal,
)

INTERNAL = [
    "http://127.0.0.1/hook", "http://127.8.9.10:8080/", "https://localhost/hook", "http://10.1.2.3/",
    "http://172.16.0.1/", "http://192.168.1.1/", "http://169.254.169.254/latest/meta-data/", "http://0.0.0.0/",
    "http://100.64.0.1/", "http://[::1]/", "http://[fe80::1]/", "http://[fc00::1]/", "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:169.254.169.254]/", "http://224.0.0.1/", "http://240.0.0.1/",
]
MALFORMED = ["ftp://example.com/", "https:///path", "https://user:pw@example.com/", "https://example.com/#x",
             "https://example.com:99999/", "example.com/hook", "https://example.com/" + "a" * 2100]


@pytest.mark.parametrize("url", INTERNAL)
async def test_internal_addresses_are_refused_unless_allowed(url):
    with pytest.raises(UrlRefused):
        await check_url(url, allow_private=False)
    assert await check_url(url, allow_private=True) == url


@pytest.mark.parametrize("url", MALFORMED)
async def test_malformed_urls_are_refused_even_when_private_ones_are_allowed(url):
    with pytest.raises(UrlRefused):
        await check_url(url, allow_private=True)


async def test_public_addresses_pass():
    for url in ("https://93.184.215.14/hook", "http://[2606:4700:4700::1111]:8443/x", "https://8.8.8.8"):
        assert await check_url(url, allow_private=False) == url
        refuse_internal_literal(url)


def test_delivery_checks_literal_hosts_itself():
    with pytest.raises(UrlRefused):
        refuse_internal_literal("http://[::ffff:10.0.0.1]:9000/")
    refuse_internal_literal("https://hooks.example.com/")  # names are the resolver's to check


async def test_the_delivery_resolver_drops_internal_answers():
    resolver = PublicOnlyResolver()
    try:
        with pytest.raises(OSError, match="internal"):
            await resolver.resolve("localhost", 80)
    finally:
        await resolver.close()


@given(st.one_of(st.ip_addresses(network="10.0.0.0/8"), st.ip_addresses(network="192.168.0.0/16"),
                 st.ip_addresses(network="172.16.0.0/12"), st.ip_addresses(network="127.0.0.0/8"),
                 st.ip_addresses(network="169.254.0.0/16"), st.ip_addresses(network="fc00::/7"),
                 st.ip_addresses(network="fe80::/10")))
def test_private_ranges_are_never_allowed(ip):
    assert not address_allowed(ip)
    assert not address_allowed(str(ip))
    if isinstance(ip, ipaddress.IPv4Address):
        assert not address_allowed(ipaddress.IPv6Address(f"::ffff:{ip}"))


@given(st.ip_addresses(v=4))
def test_an_ipv4_address_is_allowed_exactly_when_globally_routable(ip):
    assert address_allowed(ip) == (ip.is_global and not ip.is_multicast)
