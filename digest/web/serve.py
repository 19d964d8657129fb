"""`digest serve`: the public side of the newsletter, behind newsletter.base_url.

- ``GET /unsubscribe/TOKEN`` shows a confirmation page with a button. A GET never
  unsubscribes: mail scanners and link previewers fetch every link in a message.
- ``POST /unsubscribe/TOKEN`` unsubscribes: the button's form, and the RFC 8058
  one-click POST (body ``List-Unsubscribe=One-Click``) that Gmail and Yahoo send
  from their own unsubscribe buttons. The suppression is in the database before the
  response goes out; the subscriber's file is updated too. Repeating it is harmless.
- A bad, forged or expired token gets the same 400 page, which says nothing about
  why or about any address.
- ``GET /view/DAY`` is the web version of the digest sent that day (the footer's
  "view in your browser"), from the frozen copy in the store, with every personal
  field replaced by a neutral one (``?zone=Asia/Tokyo``: that time-zone group's
  edition, when the day had several).
- ``GET /archive`` lists the past editions, newest first (``?page=N``), and
  ``GET /feed.xml`` publishes the newest as an Atom feed, each entry the web version
  (digest.web.archive); the feed answers a conditional GET with 304.

It faces the internet, so nothing a client does may hold it: a client too slow to
send its request is dropped (http_deadlines), connections beyond ``[serve]
max_connections`` get 503, a subscriber file or database locked by another process
is waited for at most ``[serve] busy_timeout`` and then answered 503 with
Retry-After (the sender tries again), unsubscribes take at most a few worker
threads so pages and /healthz are never starved, and a client that hangs up is
no error.
"""

from __future__ import annotations

import contextlib
import html
import logging
import math
import socket
import string
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date

import anyio
import uvicorn
from sqlalchemy.exc import OperationalError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from digest.config import Config
from digest.errors import BusyError, DigestError
from digest.listen import bind_listener
from digest.mail import tokens
from digest.mail.message import from_domain
from digest.store.facade import Store, is_busy
from digest.subscribers import admin
from digest.web import archive
from digest.web import deadlines as http_deadlines
from digest.web.archive import pick_variant, web_version

log = logging.getLogger(__name__)

ONE_CLICK = b"List-Unsubscribe=One-Click"
MAX_BODY = 64 * 1024
# Every page: never cached (a shared cache must not keep someone's confirmation),
# never framed (clickjacking an unsubscribe button), no referrer (the URL holds a
# token), not indexed, no scripts.
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}
# The web version shows feed images and links but runs nothing.
_VIEW_HEADERS = {
    **_HEADERS,
    "Cache-Control": "public, max-age=300",
    "Content-Security-Policy": "default-src 'none'; img-src https: http: data:; "
                               "style-src 'unsafe-inline'; font-src https: data:; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
}
# The feed is public and changes once a day: readers may cache it; it runs nothing.
_FEED_HEADERS = {
    "Cache-Control": "public, max-age=300",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}
# Unsubscribes that may wait on a lock at once: the rest of Starlette's worker
# threads (40) stay free for pages, so a held lock never starves them.
WRITERS = 4


@dataclass(frozen=True)
class Site:
    config: Config
    store: Store
    keyring: tokens.Keyring
    writers: anyio.CapacityLimiter = field(
        default_factory=lambda: anyio.CapacityLimiter(WRITERS))

    @property
    def busy_timeout(self) -> float:
        return self.config.model.serve.busy_timeout

    @property
    def name(self) -> str:
        return self.config.newsletter.name

    @property
    def mailto(self) -> str:
        nl = self.config.newsletter
        return nl.unsubscribe_mailto or f"unsubscribe@{from_domain(self.config)}"


def create_app(config: Config, *, store: Store | None = None,
               keyring: tokens.Keyring | None = None) -> Starlette:
    """The app. Opens the store and reads the secrets now, so a bad setup fails early."""
    own_store = store is None
    # A locked database fails a statement after busy_timeout instead of SQLite's 30 s.
    db = store or Store.open(config.db_path, busy_timeout=config.model.serve.busy_timeout)
    site = Site(config, db, keyring or tokens.keyring(config, db))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if own_store:
                db.close()

    async def unsubscribe(request: Request) -> Response:
        token = request.path_params["token"]
        if request.method == "POST":
            try:
                body = await _body(request)
            except ClientDisconnect:
                # Gone before the body was in: nothing happened and nobody reads the answer.
                log.info("unsubscribe: the client hung up before its request was complete")
                return Response(status_code=400)
            return await _writing(site, _unsubscribe, site, token, ONE_CLICK in body)
        return await _reading(site, _confirm, site, token)

    def unsubscribe_help(request: Request) -> Response:
        return _page(site, "Unsubscribe", f"<p>To unsubscribe, use the link at the foot of "
                     f"any {_e(site.name)} email, or write to "
                     f'<a href="mailto:{_e(site.mailto)}">{_e(site.mailto)}</a>.</p>')

    async def view(request: Request) -> Response:
        return await _reading(site, _view, site, request.path_params["day"],
                              request.query_params.get("zone"))

    async def past_editions(request: Request) -> Response:
        return await _reading(site, _archive, site, request.query_params.get("page"))

    async def atom_feed(request: Request) -> Response:
        return await _reading(site, _feed, site, request.headers)

    async def index(request: Request) -> Response:
        return await _reading(site, _index, site)

    async def health(request: Request) -> Response:
        # On the event loop, no worker thread: answers however busy the threads are.
        return PlainTextResponse("ok\n", headers={"Cache-Control": "no-store"})

    routes = [
        Route("/", index),
        Route("/healthz", health),
        Route("/unsubscribe", unsubscribe_help),
        Route("/unsubscribe/{token}", unsubscribe, methods=["GET", "POST"]),
        Route("/view/{day}", view),
        Route("/archive", past_editions),
        Route("/feed.xml", atom_feed),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


async def _reading(site: Site, call: Callable[..., Response], *args: object) -> Response:
    """``call`` in a worker thread; a locked database is 503, not 500."""
    return await _busy_is_503(site, lambda: run_in_threadpool(call, *args))


async def _writing(site: Site, call: Callable[..., Response], *args: object) -> Response:
    """``call`` in a worker thread, at most WRITERS at once; waiting longer than
    busy_timeout for a turn, a file lock or the database is 503."""
    with anyio.move_on_after(site.busy_timeout) as waited:
        await site.writers.acquire()
    if waited.cancelled_caught:
        return _busy(site, "unsubscribes queued")
    try:
        return await _busy_is_503(site, lambda: run_in_threadpool(call, *args))
    finally:
        site.writers.release()


async def _busy_is_503(site: Site, run: Callable[[], Awaitable[Response]]) -> Response:
    try:
        return await run()
    except BusyError as e:
        return _busy(site, e.message)
    except OperationalError as e:
        if not is_busy(e):
            raise
        return _busy(site, f"database locked ({e.orig})")


def _busy(site: Site, why: str) -> Response:
    log.warning("busy, answered 503: %s", why)
    retry = max(1, math.ceil(site.busy_timeout))
    response = _page(site, "Busy", "<p>This took too long; please try again in a "
                     "moment.</p>", status=503)
    response.headers["Retry-After"] = str(retry)
    return response


async def _body(request: Request) -> bytes:
    """The request body, up to MAX_BYTES: enough for any one-click form."""
    data = b""
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY:
            break
    return data[:MAX_BODY]


# -- unsubscribe --------------------------------------------------------------------

def _e(s: str) -> str:
    return html.escape(s, quote=True)


def _verified(site: Site, token: str) -> str | None:
    email = site.keyring.verify(token, site.config.newsletter.list_id)
    if email is None:
        log.info("unsubscribe: rejected a bad or forged token")
    return email


def _invalid(site: Site) -> Response:
    # The same page for every failure: it must not tell a forger what was wrong.
    return _page(site, "Link not valid",
                 "<p>This unsubscribe link is not valid. Links must be copied whole; "
                 f"if yours was, use the newest {_e(site.name)} email, or write to "
                 f'<a href="mailto:{_e(site.mailto)}">{_e(site.mailto)}</a> and we will '
                 "take you off the list.</p>", status=400)


def _confirm(site: Site, token: str) -> Response:
    email = _verified(site, token)
    if email is None:
        return _invalid(site)
    if site.store.suppression(email) is not None:
        return _page(site, "Unsubscribed", f"<p><strong>{_e(email)}</strong> is unsubscribed "
                     f"from {_e(site.name)} and gets no more emails.</p>")
    # Posting to the same URL: the form works behind any reverse-proxy path prefix.
    return _page(site, f"Unsubscribe from {site.name}?",
                 f"<p>Stop sending <strong>{_e(site.name)}</strong> to "
                 f"<strong>{_e(email)}</strong>?</p>\n"
                 '<form method="post" action="">'
                 '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
                 '<button type="submit" id="unsubscribe">Unsubscribe</button></form>\n'
                 "<p class=\"small\">Nothing changes until you press the button.</p>")


def _unsubscribe(site: Site, token: str, one_click: bool) -> Response:
    email = _verified(site, token)
    if email is None:
        return _invalid(site)
    try:
        # A subscriber file busy past busy_timeout is not an error here: the
        # suppression is recorded by then (it is what stops the mail) and the file
        # catches up on the next unsubscribe, send or `subscribers check --fix`.
        # A busy database is: StoreBusy, answered 503 with Retry-After.
        done = admin.unsubscribe(site.config, site.store, email,
                                 reason="one-click" if one_click else "web",
                                 timeout=site.busy_timeout)
    except BusyError:
        raise
    except DigestError as e:  # an address that no longer validates: still a bad link
        log.warning("unsubscribe: %s", e)
        return _invalid(site)
    log.info("unsubscribe: %s %s (%s)", done.email,
             "again (already suppressed)" if done.already else "suppressed",
             "one-click" if one_click else "web form")
    return _page(site, "Unsubscribed", f"<p>Done: <strong>{_e(done.email)}</strong> gets no "
                 f"more emails from {_e(site.name)}.</p>")


# -- the web version and the archive ------------------------------------------------

def _view(site: Site, raw_day: str, zone: str | None) -> Response:
    try:
        day = date.fromisoformat(raw_day)
    except ValueError:
        day = None
    rendered = archive.pick_edition(site.store.load_digest(day), zone) if day else None
    if day is None or rendered is None:
        return _page(site, "Not found", "<p>There is no digest for that day.</p>", status=404)
    return HTMLResponse(web_version(site.config, rendered, day, zone=zone),
                        headers=_VIEW_HEADERS)


def _archive(site: Site, raw_page: str | None) -> Response:
    found = archive.archive_page(site.config, site.store, raw_page)
    if found is None:
        return _page(site, "Not found", "<p>There is no such page of past editions.</p>",
                     status=404)
    return _page(site, found.title, found.body)


def _feed(site: Site, asked: Mapping[str, str]) -> Response:
    made = archive.feed(site.config, site.store)
    headers = {**_FEED_HEADERS, **made.headers()}
    if made.fresh_for(asked):
        return Response(status_code=304, headers=headers)
    return Response(made.body, media_type="application/atom+xml; charset=utf-8",
                    headers=headers)


def _index(site: Site) -> Response:
    days = site.store.digest_days()
    items = "\n".join(f'<li><a href="view/{d.isoformat()}">{d.isoformat()}</a></li>'
                      for d in days)
    return _page(site, site.name, f"<ul>{items}</ul>" if days else "<p>No digests yet.</p>")


# -- pages -----------------------------------------------------------------------------

_PAGE = string.Template("""<!doctype html>
<html lang="$lang">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>$title · $name</title>
<style>
  body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif;
         background: #f3f1ec; color: #1d2125; }
  main { max-width: 34em; margin: 12vh auto; background: #fff; padding: 28px 32px;
         border-radius: 8px; box-shadow: 0 1px 4px rgba(0, 0, 0, .15); }
  h1 { font-size: 22px; margin: 0 0 12px; }
  button { font: inherit; padding: 10px 22px; border: 0; border-radius: 6px;
           background: #1d2125; color: #fff; cursor: pointer; }
  .small { color: #66707a; font-size: 14px; }
  a { color: #0b57d0; }
</style>
</head>
<body>
<main>
<h1>$title</h1>
$body
</main>
</body>
</html>
""")


def _page(site: Site, title: str, body: str, *, status: int = 200) -> HTMLResponse:
    text = _PAGE.substitute(lang=_e(site.config.newsletter.language), title=_e(title),
                            name=_e(site.name), body=body)
    return HTMLResponse(text, status_code=status, headers=_HEADERS)


# -- serving ---------------------------------------------------------------------------

def listen(host: str, port: int) -> socket.socket:
    """Bind now, so 'address in use' is one clear line before uvicorn starts."""
    return bind_listener(host, port, host_hint="set [serve] host or pass --host 127.0.0.1",
                         port_hint="set [serve] port or pass --port")


def server(config: Config, app: Starlette | None = None) -> uvicorn.Server:
    """uvicorn for `digest serve`, with [serve]'s request deadlines and connection cap."""
    limits = config.model.serve
    return uvicorn.Server(uvicorn.Config(
        app or create_app(config), log_level="warning", lifespan="on", proxy_headers=True,
        http=http_deadlines.protocol(header_timeout=limits.header_timeout,
                                     body_timeout=limits.body_timeout),
        # Counts open connections as well as requests: beyond it, a request is a quick 503.
        limit_concurrency=limits.max_connections))


def serve(config: Config, *, host: str, port: int) -> None:
    """Serve until Ctrl-C or SIGTERM."""
    sock = listen(host, port)
    try:
        app = create_app(config)
        shown = f"[{host}]" if ":" in host else host
        print(f"serving {config.newsletter.name} on http://{shown}:{port}/ "
              f"(public as {config.newsletter.base_url}; Ctrl-C to stop)", flush=True)
        running = server(config, app)
        with contextlib.suppress(KeyboardInterrupt):
            running.run(sockets=[sock])
    finally:
        sock.close()


__all__ = ["create_app", "listen", "pick_variant", "serve", "server", "web_version"]
