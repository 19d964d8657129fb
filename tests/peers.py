"""Real local peers for tests: a loopback HTTP server and an aiosmtpd SMTP server.

Only 127.0.0.1, always. Each peer runs in a thread so that the code under test
(sync or async) talks to it over real sockets.
"""

from __future__ import annotations

import email
import email.policy
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


Route = Callable[[BaseHTTPRequestHandler], tuple[int, dict[str, str], bytes]]


class FeedServer:
    """Serves files from a folder, plus optional custom routes, on 127.0.0.1.

    ``requests`` records (path, headers) of every request, for politeness checks.
    """

    def __init__(self, root: Path | None = None, *, tls: ssl.SSLContext | None = None) -> None:
        self.root = root
        self.scheme = "https" if tls is not None else "http"
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append((self.path, dict(self.headers)))
                route = server.routes.get(self.path)
                if route is not None:
                    status, headers, body = route(self)
                else:
                    status, headers, body = server._file(self.path)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:  # https on loopback, e.g. for images an email may show
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def _file(self, path: str) -> tuple[int, dict[str, str], bytes]:
        if self.root is None:
            return 404, {}, b"not found"
        target = (self.root / path.lstrip("/").split("?")[0]).resolve()
        if not target.is_file() or self.root.resolve() not in target.parents:
            return 404, {}, b"not found"
        return 200, {"Content-Type": "application/xml"}, target.read_bytes()

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def __enter__(self) -> FeedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        msg = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


@dataclass
class _Handler:
    received: list[Received] = field(default_factory=list)
    reject: dict[str, str] = field(default_factory=dict)  # rcpt -> "550 ..." reply
    # Offer PIPELINING, as Postfix, Exim and the big providers do (aiosmtpd reads
    # pipelined commands in order but does not say so); False tests the other path.
    pipelining: bool = True

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address in self.reject:
            return self.reject[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                      bytes(envelope.original_content or envelope.content)))
        return "250 Message accepted for delivery"


class SmtpServer:
    """aiosmtpd on 127.0.0.1 collecting every message it accepts."""

    def __init__(self, *, tls_context: Any = None, require_starttls: bool = False,
                 auth: tuple[str, str] | None = None, handler: Any = None) -> None:
        self.handler = handler if handler is not None else _Handler()
        self.port = free_port()
        kwargs: dict[str, Any] = {}
        if tls_context is not None:
            kwargs |= {"tls_context": tls_context, "require_starttls": require_starttls}
        if auth is not None:
            user, password = auth

            def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                              auth_data: Any) -> Any:
                from aiosmtpd.smtp import AuthResult

                ok = (auth_data.login.decode() == user and auth_data.password.decode() == password)
                # handled=False on failure, or the client hangs (aiosmtpd quirk).
                return AuthResult(success=ok, handled=False)

            kwargs |= {"authenticator": authenticator, "auth_require_tls": tls_context is not None,
                       "auth_required": True}
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                     **kwargs)

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


__all__ = ["FeedServer", "Received", "SMTPServer", "SmtpServer", "free_port"]
