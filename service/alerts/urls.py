"""Which webhook URLs may be called: http(s) only and, unless the operator allows it, never an
internal address (loopback, private, link-local, shared, reserved: anything not globally routable).

A tenant's URL is checked twice: when it is registered (for a clear refusal), and at every
delivery, where the addresses a name resolves to are filtered before connecting, so a name that
later resolves to an internal address (DNS rebinding) reaches nothing.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

MAX_URL_LENGTH = 2048

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UrlRefused(ValueError):
    """A webhook URL that may not be used; the message says why."""


def host_and_port(url: str) -> tuple[str, int]:
    """The URL's host and port, or UrlRefused when it is not a plain http(s) URL."""
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
    except ValueError:  # a bracketed host that is no IPv6 address: `http://[zz]/`
        raise UrlRefused("the URL's host is not a valid address") from None
    if parts.scheme not in ("http", "https"):
        raise UrlRefused("the URL must start with http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("the URL may not carry credentials; the signature authenticates the gateway")
    if parts.fragment:
        raise UrlRefused("the URL may not have a #fragment")
    try:
        port = parts.port
    except ValueError:
        raise UrlRefused("the URL's port is not a number from 0 to 65535") from None
    if not parts.hostname:
        raise UrlRefused("the URL has no host")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def address_allowed(address: str | IPAddress) -> bool:
    ip = literal_address(address) if isinstance(address, str) else address
    if ip is None:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def refuse_internal_literal(url: str) -> None:
    """Delivery's check for a URL whose host is an IP address (no resolver sees those)."""
    host, _ = host_and_port(url)
    ip = literal_address(host)
    if ip is not None and not address_allowed(ip):
        raise UrlRefused(f"{ip} is an internal address")


async def check_url(url: str, *, allow_private: bool) -> str:
    """Registration's check; a name that does not resolve now is accepted (delivery checks again)."""
    host, port = host_and_port(url)
    if allow_private:
        return url
    ip = literal_address(host)
    if ip is not None:
        if not address_allowed(ip):
            raise UrlRefused(f"{ip} is an internal address, and this gateway does not call those")
        return url
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return url
    internal = sorted({str(info[4][0]) for info in infos if not address_allowed(str(info[4][0]))})
    if internal:
        raise UrlRefused(f"{host} resolves to an internal address ({', '.join(internal)}), and this gateway"
                         " does not call those")
    return url


class PublicOnlyResolver(AbstractResolver):
    """aiohttp's resolver with every internal address dropped; none left is a connection error."""

    def __init__(self) -> None:
        self._inner = ThreadedResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if address_allowed(r["host"])]
        if not allowed:
            # (errno, text): aiohttp shows an OSError's strerror in its connection error's message.
            raise OSError(errno.EHOSTUNREACH, f"{host} resolves only to internal addresses")
        return allowed

    async def close(self) -> None:
        await self._inner.close()
