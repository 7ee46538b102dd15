"""Is an address this machine? One definition for binds, the API's callers and the chaos hooks."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str | None) -> bool:
    """True if ``host`` is a loopback IP address (IPv4-mapped IPv6 included).

    For a peer's address: a name such as ``localhost`` is not an address and answers False.
    """
    try:
        addr = ipaddress.ip_address(host or "")
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped.is_loopback
    return addr.is_loopback


def names_loopback(host: str) -> bool:
    """True if a configured host (``localhost``, ``127.0.0.1``, ``[::1]``) is this machine."""
    host = host.strip()
    return host.lower() == "localhost" or is_loopback(host.strip("[]"))
