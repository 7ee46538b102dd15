"""Is an address this machine? One definition for binds, the API's callers and the chaos hooks;
and can a server listen on a port of it now."""

from __future__ import annotations

import errno
import ipaddress
import socket


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


def bind_refused(host: str, port: int) -> str | None:
    """Why a server could not bind ``host:port`` now (None: it could).

    Binds as the servers do (SO_REUSEADDR, as uvicorn, Faust's web server and the
    supervisor's Prometheus server all set it), so a port left in TIME_WAIT by a previous
    server is free; one that something listens on is not. Other errors raise.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
                return exc.strerror or str(exc)
            raise
    return None


def port_taken(host: str, port: int) -> bool:
    """Whether a server could not bind ``host:port`` now (``bind_refused``)."""
    return bind_refused(host, port) is not None
