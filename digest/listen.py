"""Binding a listening socket ourselves, before a server library starts.

`digest preview`, `digest serve` and `digest catch` all bind first so that
"address in use" is one clear line instead of a library's traceback, and so a
browser opened straight away waits in the backlog instead of failing.
"""

from __future__ import annotations

import errno
import socket

from digest.errors import DigestError


def bind_listener(host: str, port: int, *, error: type[DigestError] = DigestError,
                  host_hint: str = "pass --host 127.0.0.1",
                  port_hint: str = "pass --port", backlog: int = 128) -> socket.socket:
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as e:
        raise error(f"cannot listen on {host}:{port}: {e.strerror or 'unknown host'}",
                    hint=host_hint) from None
    sock = socket.socket(family, kind, proto)
    # As uvicorn and asyncio do: a restart may reuse a port still in TIME_WAIT;
    # a live listener still makes bind fail.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
        sock.listen(backlog)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise error(f"cannot listen on {host}:{port}: address in use",
                        hint=port_hint) from None
        raise error(f"cannot listen on {host}:{port}: {e.strerror or e}",
                    hint=f"{host_hint} or {port_hint}") from None
    return sock
