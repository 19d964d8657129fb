"""`digest preview`: exactly what each subscriber gets, in a browser, kept live.

The page shows the real personalised copy (``pipeline.copy_for``, the same code
`digest render` and `digest send` use) in a sandboxed frame, with its text part,
raw message and checks (web.checks). ``Live`` (web.live) watches the
templates, subscribers and config.toml and bumps a version; /events pushes it to
every open page over server-sent events, and the page reloads itself. The page
is web/page.{py,html,js}; "send a test" is web.send_test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import socket
import webbrowser
from collections.abc import AsyncIterator, Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digest import pipeline
from digest.config import Config
from digest.errors import DigestError
from digest.listen import bind_listener
from digest.store.facade import Store
from digest.subscribers import roster as subs
from digest.web import checks
from digest.web import send_test as preview_send
from digest.web.desk import Desk, DeskOps
from digest.web.desk import handle as desk_handle
from digest.web.live import BadRequest, Live, View, fingerprint
from digest.web.page import HERE, render_page

log = logging.getLogger(__name__)

html_part_size = checks.html_part_size  # kept here too: older callers import it from preview

# What a preview response must never do: run script from feed content. The
# iframe sandbox already forbids it; the header also covers opening
# /email.html directly.
_EMAIL_HEADERS = {"Content-Security-Policy": "script-src 'none'",
                  "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}
_NO_STORE = {"Cache-Control": "no-store"}
# Always-true and always-false media features: valid inside any media query list.
_DARK = re.compile(r"\(\s*prefers-color-scheme\s*:\s*dark\s*\)", re.IGNORECASE)
_LIGHT = re.compile(r"\(\s*prefers-color-scheme\s*:\s*light\s*\)", re.IGNORECASE)
_WHERE = re.compile(r"^(?P<file>/[^:\n]+):(?P<line>\d+): (?P<rest>.*)$", re.DOTALL)


def dark_html(html: str) -> str:
    """The email as a client in dark mode shows it: its prefers-color-scheme: dark rules on."""
    return _LIGHT.sub("(max-width: 0px)", _DARK.sub("(min-width: 0px)", html))


# -- the app --------------------------------------------------------------------------

def create_app(config: Config, *, host: str = "127.0.0.1", watch: bool = True,
               desk: DeskOps | None = None, clock: Callable[[], datetime] | None = None
               ) -> Starlette:
    """The preview app. Opens the store now, so a bad database fails before serving.
    ``desk`` (digest.ops.desk, handed in by the CLI) adds the editor's desk panel."""
    live = Live(config, clock=clock)
    table = Desk(desk, live) if desk is not None else None

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # collect may run its own event loop (asyncio.run), so never on this one.
        await run_in_threadpool(_collect_if_empty, live.config, live.store, live.clock())
        tasks = [asyncio.create_task(live.poll())]
        if watch:
            tasks.append(asyncio.create_task(live.watch()))
        try:
            yield
        finally:
            live.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            live.close()

    # Sync handlers run in Starlette's threadpool, which the render and SQLite calls want.
    def index(request: Request) -> Response:
        return _index(live, request, table)

    def part(request: Request) -> Response:
        return _part(live, request, request.url.path.rpartition(".")[2])

    async def events(request: Request) -> Response:
        return _events(live)

    async def send_test(request: Request) -> Response:
        return await _send_test(live, request)

    async def desk_action(request: Request) -> Response:
        return await desk_handle(table, request)

    routes = [
        Route("/", index),
        Route("/email.html", part),
        Route("/email.txt", part),
        Route("/email.eml", part),
        Route("/preview.js", _script),
        Route("/events", events),
        Route("/send-test", send_test, methods=["POST"]),
        Route("/desk", desk_action, methods=["POST"]),
    ]
    # A web page the user visits must not read the preview through a rebound DNS name.
    loopback = ["127.0.0.1", "localhost", "::1", "[::1]"]
    hosts = ["*"] if host in ("", "0.0.0.0", "::") else [*loopback, host]
    app = Starlette(routes=routes, lifespan=lifespan,
                    middleware=[Middleware(FramePolicy),
                                Middleware(TrustedHostMiddleware, allowed_hosts=hosts)])
    app.state.live = live
    return app


class FramePolicy:
    """No other site may frame the preview: its page holds the token that sends test
    mail, and a framed page can be clicked through (clickjacking). Only the page
    itself frames the email (/email.html), so that one allows its own origin."""

    OWN_FRAME = "/email.html"

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        own = scope["path"] == self.OWN_FRAME
        ancestors = "frame-ancestors 'self'" if own else "frame-ancestors 'none'"

        async def send_framed(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                policy = headers.get("content-security-policy")
                headers["Content-Security-Policy"] = f"{policy}; {ancestors}" if policy \
                    else ancestors
                headers["X-Frame-Options"] = "SAMEORIGIN" if own else "DENY"
            await send(message)

        await self.app(scope, receive, send_framed)


def _collect_if_empty(config: Config, store: Store, now: datetime) -> None:
    """A first preview should show something: fetch the feeds once if nothing is stored."""
    if store.count_articles():
        return
    try:
        # A broken feed is logged by collect itself and skipped.
        pipeline.collect(config, store, now=now)
    except DigestError as e:
        # The page then says there is nothing to show; the server must still come up.
        log.warning("collect before preview failed: %s", e)


# -- handlers ---------------------------------------------------------------------------

def _wanted(request: Request) -> tuple[str | None, date | None]:
    q = request.query_params
    email, day = q.get("subscriber", "").strip(), q.get("day", "").strip()
    try:
        return (subs.normalise_email(email) if email else None,
                date.fromisoformat(day) if day else None)
    except DigestError as e:
        raise BadRequest(e.message) from None
    except ValueError:
        raise BadRequest(f"day: {day!r} is not a date", hint="use YYYY-MM-DD") from None


def _status(e: DigestError) -> int:
    if isinstance(e, subs.Unmailable):
        return 409  # a real address, but digest will not mail it: no copy to show
    return 400 if isinstance(e, BadRequest) else 500


def _view(live: Live, request: Request) -> View:
    if live.error is not None:
        raise live.error
    email, day = _wanted(request)
    return live.view(email, day)


def _part(live: Live, request: Request, kind: str) -> Response:
    try:
        copy = _view(live, request).copy
    except DigestError as e:
        log.warning("preview: %s", e)
        return PlainTextResponse(f"error: {e}\n", status_code=_status(e))
    if copy is None:
        return PlainTextResponse("No stories for today — run digest collect\n", status_code=404)
    if kind == "html":
        dark = request.query_params.get("dark") == "1"
        return HTMLResponse(dark_html(copy.html) if dark else copy.html, headers=_EMAIL_HEADERS)
    if kind == "txt":
        return PlainTextResponse(copy.text, headers=_EMAIL_HEADERS)
    name = f"digest-{copy.subscriber.email.split('@')[0]}.eml"
    return Response(copy.eml, media_type="message/rfc822",
                    headers={"Content-Disposition": f'inline; filename="{name}"', **_NO_STORE})


def _index(live: Live, request: Request, desk: Desk | None) -> Response:
    try:
        view = _view(live, request)
        # The desk edits today's edition only: a stored day is what went out.
        panel = desk.panel() if desk is not None and view.day == view.today else None
    except DigestError as e:
        # Shown in the page, the server lives on: fix the file and the page reloads.
        log.warning("preview: %s", e)
        html = render_page(live, request, None, error=describe_error(e, live.error is e))
        return HTMLResponse(html, status_code=_status(e), headers=_NO_STORE)
    return HTMLResponse(render_page(live, request, view, desk=panel), headers=_NO_STORE)


def describe_error(e: DigestError, config: bool = False) -> dict[str, Any]:
    """Title, file:line, message and a few source lines around the line, for the page."""
    title = "config.toml does not load" if config else (
        "Template error" if type(e).__name__ == "TemplateError" else "Cannot show the preview")
    m = _WHERE.match(str(e))
    if not m:
        return {"title": title, "where": "", "message": str(e), "excerpt": []}
    path, line = Path(m["file"]), int(m["line"])
    excerpt = []
    with contextlib.suppress(OSError):
        lines = path.read_text("utf-8", "replace").splitlines()
        first = max(line - 3, 1)
        excerpt = [(no, lines[no - 1], no == line)
                   for no in range(first, min(line + 2, len(lines)) + 1)]
    return {"title": title, "where": f"{path}:{line}", "message": m["rest"], "excerpt": excerpt}


def _script(request: Request) -> Response:
    return Response((HERE / "page.js").read_bytes(), media_type="text/javascript",
                    headers=_NO_STORE)


def _events(live: Live) -> Response:
    queue = live.listen()

    async def stream() -> AsyncIterator[str]:
        try:
            # The current version first: a page rendered before a change reloads at once.
            yield f"retry: 1000\nevent: version\ndata: {live.version}\n\n"
            while not live.stopped:
                try:
                    version = await asyncio.wait_for(queue.get(), timeout=15)
                except TimeoutError:
                    yield ": still here\n\n"  # keeps proxies and idle timeouts away
                    continue
                if version is None:
                    return
                yield f"event: version\ndata: {version}\n\n"
        finally:
            live.unlisten(queue)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={**_NO_STORE, "X-Accel-Buffering": "no"})


async def _send_test(live: Live, request: Request) -> Response:
    # Only the preview page may send: it alone knows the token (another site's form
    # cannot set the header, and cannot read the page to learn it).
    if not secrets.compare_digest(request.headers.get("x-preview-token", ""), live.token):
        return JSONResponse({"ok": False, "error": "missing or wrong preview token"}, 403)
    try:
        body = json.loads(await request.body())
        to = str(body.get("to") or "").strip()
        if not to:
            raise BadRequest("no address to send the test to")
        day = date.fromisoformat(body["day"]) if body.get("day") else None
        sent = await preview_send.send_test_async(
            live.config, live.store, to=to, subscriber=body.get("subscriber") or None, day=day)
    except (ValueError, AttributeError):
        return JSONResponse({"ok": False, "error": "malformed request"}, 400)
    except DigestError as e:
        log.warning("preview: test send: %s", e)
        return JSONResponse({"ok": False, "error": str(e)}, 400 if isinstance(
            e, BadRequest | subs.SubscriberError) else 502)
    return JSONResponse({"ok": True, "detail": sent.describe(), "to": sent.to,
                         "subject": sent.subject})


# -- serving ---------------------------------------------------------------------------

class Server(uvicorn.Server):
    """uvicorn, ending the preview's event streams first: uvicorn waits for open
    responses before it stops, and an event stream never ends by itself."""

    def __init__(self, app: Starlette, *, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                        lifespan="on", timeout_graceful_shutdown=3))
        self.live: Live = app.state.live

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.live.stop()
        await super().shutdown(sockets)


def url_for(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def _say_if_frozen(config: Config) -> None:
    store = pipeline.open_store(config)
    try:
        notice = pipeline.frozen_notice(config, store, now=pipeline.utcnow())
    finally:
        store.close()
    if notice:
        print(notice, flush=True)


def serve(config: Config, *, host: str, port: int, open_browser: bool,
          desk: DeskOps | None = None) -> None:
    """Serve the preview until Ctrl-C. Raises DigestError if the port is taken."""
    sock = bind_listener(host, port)
    try:
        server = Server(create_app(config, host=host, desk=desk), host=host, port=port)
        url = url_for(host, port)
        print(f"previewing {config.newsletter.name} at {url} (Ctrl-C to stop)", flush=True)
        _say_if_frozen(config)
        if host not in ("127.0.0.1", "localhost", "::1"):
            log.warning("listening on %s: the preview is reachable from other machines", host)
        if open_browser:
            webbrowser.open(url)
        # uvicorn shuts down cleanly on Ctrl-C, then re-raises the signal; for a
        # preview that is the normal way out, not an abort.
        with contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=[sock])
    finally:
        sock.close()


__all__ = ["Live", "Server", "View", "create_app", "dark_html", "fingerprint", "html_part_size",
           "serve", "url_for"]
