"""`digest catch`: a local SMTP server that writes every message it accepts to a folder.

For the demo and for trying a config without mailing anyone: point smtp.host/port
(security = "none") at it and open the .eml files in any mail client. Each file
holds the message bytes exactly as they arrived in DATA.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import signal
import socket
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from aiosmtpd.controller import Controller

from digest.errors import DeliveryError
from digest.files import write_atomic
from digest.listen import bind_listener

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9@._+-]+")


class _Handler:
    """aiosmtpd handler: one atomically written .eml file per accepted message."""

    def __init__(self, folder: Path, on_message: Callable[[Path], None] | None) -> None:
        self.folder = folder
        self.on_message = on_message
        self.received = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data: bytes = envelope.original_content or b""
        rcpts: list[str] = list(envelope.rcpt_tos)
        # Runs on the controller's single loop thread, so the counter needs no lock.
        self.received += 1
        path = self.folder / _file_name(self.received, rcpts[0] if rcpts else "")
        try:
            write_atomic(path, data)
        except OSError as e:
            log.error("cannot write %s: %s", path, e.strerror)
            return "451 4.3.0 cannot store the message right now"
        log.info("caught %s -> %s (%s bytes)", envelope.mail_from, ", ".join(rcpts), len(data))
        if self.on_message is not None:
            self.on_message(path)
        return f"250 2.0.0 OK stored as {path.name}"


def _file_name(seq: int, rcpt: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    who = _UNSAFE.sub("_", rcpt).strip("._")[:80] or "unknown"
    return f"{stamp}-{seq:05d}-{who}.eml"


class _BoundController(Controller):
    """A Controller serving an already bound socket.

    Binding ourselves makes "address in use" an immediate, clear error and lets
    port 0 pick a free port (aiosmtpd's own start() would then probe port 0).
    """

    def __init__(self, handler: _Handler, sock: socket.socket) -> None:
        host, port = sock.getsockname()[:2]
        # server_hostname avoids aiosmtpd's per-connection getfqdn() (a DNS wait).
        super().__init__(handler, hostname=host, port=port,
                         server_hostname=socket.gethostname() or "localhost")
        self._sock = sock

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock)


class Catcher:
    """An SMTP catcher on host:port (port 0 picks a free one; see ``.port``)."""

    def __init__(self, folder: Path, host: str = "127.0.0.1", port: int = 2525,
                 on_message: Callable[[Path], None] | None = None) -> None:
        if not host:
            raise DeliveryError("the catcher needs an explicit address to listen on",
                                hint="pass --host 127.0.0.1 (or 0.0.0.0 to accept the network)")
        self.folder = Path(folder)
        self.host = host
        self._handler = _Handler(self.folder, on_message)
        self._sock: socket.socket | None = None
        self._controller: _BoundController | None = None
        self.port = port

    @property
    def received(self) -> int:
        return self._handler.received

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        sock = _bind(self.host, self.port)
        self.port = int(sock.getsockname()[1])
        if not _is_loopback(self.host):
            log.warning("the catcher on %s:%s is reachable from the network", self.host,
                        self.port)
        self._controller = _BoundController(self._handler, sock)
        try:
            self._controller.start()
        except BaseException:
            sock.close()
            raise
        log.info("catching mail on %s:%s into %s", self.host, self.port, self.folder)

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> Catcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _bind(host: str, port: int) -> socket.socket:
    sock = bind_listener(host, port, error=DeliveryError, backlog=100)
    sock.setblocking(False)
    return sock


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_catcher(folder: Path, host: str, port: int,
                on_message: Callable[[Path], None] | None = None) -> None:
    """Serve until Ctrl-C or SIGTERM (for the CLI); every message lands in ``folder``."""
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with Catcher(folder, host, port, on_message=on_message):
            stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
