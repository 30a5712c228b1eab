"""Which network addresses deeptag may fetch images from or push output to."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import SplitResult, urlsplit

from orchestrator.errors import FetchFailed, SinkNotAllowed, SourceRefused, quote_input

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud metadata services answer on these; a fetched "image" from them leaks credentials.
_METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("100.100.100.200"),
    ipaddress.ip_address("fd00:ec2::254"),
}


def refusal(address: IPAddress, allow_private: bool) -> str | None:
    """Why an image may not be fetched from ``address``, or None when it may (pure)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address in _METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast or address.is_unspecified or address.is_reserved:
        return "not a unicast address"
    if not allow_private and (address.is_loopback or address.is_private):
        return "a private or loopback address (set DEEPTAG_FETCH_ALLOW_PRIVATE=true to allow)"
    return None


async def resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(info[4][0]) for info in infos]


def _split(url: str) -> tuple[SplitResult, int | None] | None:
    """The parts and port of ``url``, or None when it cannot be parsed (a bad port, "[")."""
    try:
        parts = urlsplit(url)
        return parts, parts.port
    except ValueError:
        return None


async def check_fetch_url(url: str, allow_private: bool) -> None:
    """Raise SourceRefused unless every address ``url``'s host resolves to may be fetched."""
    name = quote_input(url)
    split = _split(url)
    if split is None:
        raise SourceRefused(f"{name}: not a valid URL")
    parts, explicit_port = split
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SourceRefused(f"{name}: only http and https URLs can be fetched")
    port = explicit_port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = await resolve(parts.hostname, port)
    # UnicodeError: a host name IDNA cannot encode (a label over 63 characters).
    except (OSError, UnicodeError) as e:
        raise FetchFailed(
            f"{name}: cannot resolve host '{quote_input(parts.hostname)}': {e}"
        ) from e
    for address in addresses:
        why = refusal(address, allow_private)
        if why:
            raise SourceRefused(
                f"{name}: refused, host '{quote_input(parts.hostname)}' is {why} ({address})"
            )


def check_sink_url(url: str, allowed_hosts: frozenset[str]) -> None:
    """Raise SinkNotAllowed unless ``url`` is http(s) to an allow-listed host (pure)."""
    name = quote_input(url)
    split = _split(url)
    if split is None:
        raise SinkNotAllowed(f"output.network.url '{name}' is not a valid URL")
    parts = split[0]
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SinkNotAllowed(f"output.network.url '{name}' must be an http or https URL")
    if parts.hostname.lower() not in allowed_hosts:
        raise SinkNotAllowed(
            f"output.network.url '{name}': host '{quote_input(parts.hostname)}' is not in the "
            "sink allow-list (DEEPTAG_SINK_ALLOW)"
        )
