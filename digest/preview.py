"""`digest preview`: today's email in a browser, served on 127.0.0.1.

The page wraps the real personalised copy (the same ``pipeline.copy_for`` that
``digest render`` writes) in a small frame: a subscriber picker, desktop/mobile
widths, the text part, and the HTML size against Gmail's clip. Every request
rebuilds the copy, so edits to templates and subscriber files show on reload;
the page polls a cheap fingerprint (``/changes``) and reloads itself when they
change. Changes to config.toml need a restart: the Config is loaded once.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import html
import logging
import socket
import string
import webbrowser
from collections.abc import AsyncIterator
from email.message import EmailMessage
from urllib.parse import quote

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from digest import pipeline
from digest import subscribers as subs
from digest.config import Config
from digest.errors import DigestError
from digest.models import Subscriber
from digest.store import Store

log = logging.getLogger(__name__)

GMAIL_CLIP_KB = 102
NOTHING = "No stories for today — run <code>digest collect</code>"
WIDTHS = {"desktop": 600, "mobile": 375}

# What a preview response must never do: run script from feed content. The
# iframe sandbox already forbids it; the header also covers opening
# /email.html directly.
_EMAIL_HEADERS = {"Content-Security-Policy": "script-src 'none'",
                  "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


class _BadRequest(DigestError):
    """A malformed query parameter: the caller's fault (400), not the server's (500)."""


# -- the app ------------------------------------------------------------------

def create_app(config: Config) -> Starlette:
    """The preview app. Opens the store now, so a bad database fails before serving."""
    store = pipeline.open_store(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # collect may run its own event loop (asyncio.run), so never on this one.
        await run_in_threadpool(_collect_if_empty, config, store)
        try:
            yield
        finally:
            store.close()

    # Sync handlers: Starlette runs them in its threadpool, which is what the
    # blocking render and SQLite calls want.
    def index(request: Request) -> Response:
        return _index(config, store, request)

    def email_html(request: Request) -> Response:
        return _email(config, store, request, "html")

    def email_text(request: Request) -> Response:
        return _email(config, store, request, "text")

    def email_eml(request: Request) -> Response:
        return _email(config, store, request, "eml")

    def changes(request: Request) -> Response:
        return PlainTextResponse(fingerprint(config, store), headers={"Cache-Control": "no-store"})

    routes = [
        Route("/", index),
        Route("/email.html", email_html),
        Route("/email.txt", email_text),
        Route("/email.eml", email_eml),
        Route("/changes", changes),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def _collect_if_empty(config: Config, store: Store) -> None:
    """A first preview should show something: fetch the feeds once if nothing is stored."""
    if store.count_articles():
        return
    try:
        # A broken feed is logged by collect itself and skipped.
        pipeline.collect(config, store, now=pipeline.utcnow())
    except DigestError as e:
        # The page then says there is nothing to show; the server must still come up.
        log.warning("collect before preview failed: %s", e)


def fingerprint(config: Config, store: Store) -> str:
    """Changes whenever something the preview shows may have changed (not config.toml)."""
    h = hashlib.sha256()
    for folder in (config.templates_dir, config.subscribers_dir):
        for path in sorted(folder.rglob("*")) if folder.is_dir() else ():
            with contextlib.suppress(OSError):  # an editor's temp file may vanish meanwhile
                st = path.stat()
                h.update(f"{path}\0{st.st_mtime_ns}\0{st.st_size}\n".encode())
    h.update(f"{store.count_articles()} {store.digest_days()}".encode())
    return h.hexdigest()[:16]


# -- handlers -----------------------------------------------------------------

def _wanted(request: Request) -> str | None:
    raw = request.query_params.get("subscriber", "").strip()
    if not raw:
        return None
    try:
        return subs.normalise_email(raw)
    except DigestError as e:
        raise _BadRequest(e.message) from None


def _copy(config: Config, store: Store, email: str | None) -> pipeline.Copy | None:
    return pipeline.copy_for(config, store, now=pipeline.utcnow(), email=email)


def _status(e: DigestError) -> int:
    return 400 if isinstance(e, _BadRequest) else 500


def _email(config: Config, store: Store, request: Request, kind: str) -> Response:
    try:
        copy = _copy(config, store, _wanted(request))
    except DigestError as e:
        log.warning("preview: %s", e)
        return PlainTextResponse(f"error: {e}\n", status_code=_status(e))
    if copy is None:
        return PlainTextResponse("No stories for today — run digest collect\n", status_code=404)
    if kind == "html":
        return HTMLResponse(copy.html, headers=_EMAIL_HEADERS)
    if kind == "text":
        return PlainTextResponse(copy.text, headers=_EMAIL_HEADERS)
    name = f"digest-{copy.subscriber.email.split('@')[0]}.eml"
    return Response(copy.message.as_bytes(), media_type="message/rfc822",
                    headers={"Content-Disposition": f'inline; filename="{name}"',
                             "Cache-Control": "no-store"})


def _index(config: Config, store: Store, request: Request) -> Response:
    wanted: str | None = None
    people: tuple[Subscriber, ...] = ()
    try:
        wanted = _wanted(request)
        people = pipeline.load_roster(config).active(store.suppressed())
        copy = _copy(config, store, wanted)
    except DigestError as e:
        # One line on the page, the server lives on: fix the template and reload.
        log.warning("preview: %s", e)
        body = f'<p class="error" id="error">{html.escape(str(e))}</p>'
        return HTMLResponse(_page(config, store, people, wanted, None, body),
                            status_code=_status(e))
    if copy is None:
        body = f'<p class="notice" id="nothing">{NOTHING}</p>'
        return HTMLResponse(_page(config, store, people, wanted, None, body))
    return HTMLResponse(_page(config, store, people, copy.subscriber.email, copy, _frame(copy)))


# -- the page -----------------------------------------------------------------

def _frame(copy: pipeline.Copy) -> str:
    # No allow-scripts and no allow-same-origin: the email cannot run code or
    # reach the preview; links may still open in a new tab.
    src = "/email.html?subscriber=" + quote(copy.subscriber.email, safe="@")
    return (f'<iframe id="email" title="Email preview" src="{html.escape(src)}" '
            f'sandbox="allow-popups allow-popups-to-escape-sandbox" '
            f'style="width: {WIDTHS["desktop"]}px"></iframe>\n'
            f'<pre id="text" hidden>{html.escape(copy.text)}</pre>')


def html_part_size(message: EmailMessage, fallback: str) -> int:
    """Bytes of the HTML part as it travels (after transfer encoding), what Gmail counts."""
    for part in message.walk():
        if part.get_content_type() == "text/html" and not part.is_multipart():
            payload = part.get_payload()
            if isinstance(payload, str):
                return len(payload.encode("utf-8", "surrogateescape"))
    return len(fallback.encode("utf-8"))


def _size_line(copy: pipeline.Copy | None) -> str:
    if copy is None:
        return ""
    size = html_part_size(copy.message, copy.html)
    kb = size / 1024
    over = kb > GMAIL_CLIP_KB
    verdict = "Gmail will clip it" if over else f"{GMAIL_CLIP_KB - kb:.1f} KB to spare"
    return (f'<p id="size" class="{"over" if over else "ok"}">HTML part {kb:.1f} KB as sent, '
            f"of Gmail's {GMAIL_CLIP_KB} KB clip ({verdict})</p>")


def _options(people: tuple[Subscriber, ...], selected: str | None) -> str:
    rows = list(people)
    if selected and all(p.email != selected for p in rows):
        # A paused or unknown address asked for by URL still shows as chosen.
        rows.append(Subscriber(email=selected, status="paused"))
    out = []
    for p in rows:
        label = f"{p.name} <{p.email}>" if p.name else p.email
        if p.topics:
            label += f" · {', '.join(p.topics)}"
        if p.status != "active":
            label += " (not active)"
        chosen = " selected" if p.email == selected else ""
        out.append(f'<option value="{html.escape(p.email)}"{chosen}>{html.escape(label)}</option>')
    return "\n".join(out) or '<option value="">(no active subscribers)</option>'


def _page(config: Config, store: Store, people: tuple[Subscriber, ...], selected: str | None,
          copy: pipeline.Copy | None, body: str) -> str:
    name = config.newsletter.name
    subject = copy.rendered.subject if copy else "—"
    preheader = copy.rendered.preheader if copy else "—"
    query = "?subscriber=" + quote(copy.subscriber.email, safe="@") if copy else ""
    return _PAGE.substitute(
        name=html.escape(name),
        sender=html.escape(config.newsletter.from_address),
        subject=html.escape(subject),
        preheader=html.escape(preheader),
        options=_options(people, selected),
        size=_size_line(copy),
        body=body,
        query=html.escape(query),
        day=html.escape(_day_label(config)),
        stamp=fingerprint(config, store),
        desktop=WIDTHS["desktop"],
        mobile=WIDTHS["mobile"],
    )


def _day_label(config: Config) -> str:
    return pipeline.today(config, pipeline.utcnow()).isoformat()


# string.Template, not an f-string or str.format: CSS and JS are full of braces.
# The script avoids "$" for the same reason.
_PAGE = string.Template("""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Preview · $name</title>
<style>
  * { box-sizing: border-box; }
  [hidden] { display: none !important; }
  body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif;
         background: #e9ebee; color: #1d2125; }
  header { background: #fff; border-bottom: 1px solid #d0d4d9; padding: 12px 20px; }
  h1 { font-size: 18px; margin: 0 0 6px; }
  h1 small { font-weight: normal; color: #66707a; font-size: 13px; margin-left: 6px; }
  dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 0 0 10px; }
  dt { color: #66707a; } dd { margin: 0; }
  #preheader { color: #48515a; }
  .controls { display: flex; flex-wrap: wrap; gap: 12px; align-items: center; }
  .group { display: inline-flex; border: 1px solid #b8bec5; border-radius: 6px;
           overflow: hidden; }
  .group button { border: 0; background: #fff; padding: 5px 12px; font: inherit;
                  cursor: pointer; }
  .group button + button { border-left: 1px solid #b8bec5; }
  .group button[aria-pressed="true"], .group button[aria-selected="true"] {
    background: #1d2125; color: #fff; }
  select { font: inherit; padding: 4px; max-width: 32em; }
  #size { margin: 8px 0 0; color: #48515a; }
  #size.over { color: #b00020; font-weight: bold; }
  main { padding: 20px; display: flex; justify-content: center; }
  iframe { display: block; border: 0; background: #fff; height: calc(100vh - 230px);
           min-height: 480px; box-shadow: 0 1px 4px rgba(0, 0, 0, .2); }
  #text { background: #fff; margin: 0; padding: 16px 20px; width: 100%; max-width: 760px;
          white-space: pre-wrap; overflow-wrap: anywhere;
          font: 13px/1.45 ui-monospace, Menlo, Consolas, monospace;
          box-shadow: 0 1px 4px rgba(0, 0, 0, .2); }
  .notice, .error { background: #fff; padding: 16px 20px; max-width: 760px; margin: 0;
                    box-shadow: 0 1px 4px rgba(0, 0, 0, .2); white-space: pre-wrap; }
  .error { border-left: 4px solid #b00020; color: #b00020; }
  a { color: #0b57d0; }
</style>
</head>
<body>
<header>
  <h1>$name <small>preview · $day</small></h1>
  <dl>
    <dt>From</dt><dd>$sender</dd>
    <dt>Subject</dt><dd id="subject">$subject</dd>
    <dt>Preheader</dt><dd id="preheader">$preheader</dd>
  </dl>
  <div class="controls">
    <label>To <select id="subscriber">
$options
    </select></label>
    <span class="group" role="group" aria-label="Width">
      <button type="button" id="width-desktop" aria-pressed="true">Desktop $desktop px</button>
      <button type="button" id="width-mobile" aria-pressed="false">Mobile $mobile px</button>
    </span>
    <span class="group" role="tablist" aria-label="Part">
      <button type="button" role="tab" id="tab-html" aria-selected="true">HTML</button>
      <button type="button" role="tab" id="tab-text" aria-selected="false">Text</button>
    </span>
    <a href="/email.eml$query">.eml</a> <a href="/email.txt$query">.txt</a>
    <a href="/email.html$query" target="_blank">open HTML</a>
  </div>
  $size
</header>
<main>
$body
</main>
<script>
(function () {
  var frame = document.getElementById("email");
  var text = document.getElementById("text");
  var memory = window.sessionStorage;
  function remember(key, value) { try { memory.setItem(key, value); } catch (e) {} }
  function setWidth(px) {
    if (frame) { frame.style.width = px + "px"; }
    document.getElementById("width-desktop").setAttribute("aria-pressed", String(px === $desktop));
    document.getElementById("width-mobile").setAttribute("aria-pressed", String(px === $mobile));
    remember("digest-preview-width", String(px));
  }
  function setTab(name) {
    if (frame) { frame.hidden = name !== "html"; }
    if (text) { text.hidden = name !== "text"; }
    document.getElementById("tab-html").setAttribute("aria-selected", String(name === "html"));
    document.getElementById("tab-text").setAttribute("aria-selected", String(name === "text"));
    remember("digest-preview-tab", name);
  }
  document.getElementById("width-desktop").onclick = function () { setWidth($desktop); };
  document.getElementById("width-mobile").onclick = function () { setWidth($mobile); };
  document.getElementById("tab-html").onclick = function () { setTab("html"); };
  document.getElementById("tab-text").onclick = function () { setTab("text"); };
  document.getElementById("subscriber").onchange = function (ev) {
    if (ev.target.value) {
      window.location.search = "?subscriber=" + encodeURIComponent(ev.target.value);
    }
  };
  // A live reload keeps the chosen width and tab.
  setWidth(memory.getItem("digest-preview-width") === "$mobile" ? $mobile : $desktop);
  setTab(memory.getItem("digest-preview-tab") === "text" ? "text" : "html");
  var stamp = "$stamp";
  window.setInterval(function () {
    fetch("/changes", { cache: "no-store" })
      .then(function (r) { return r.ok ? r.text() : stamp; })
      .then(function (now) { if (now !== stamp) { window.location.reload(); } })
      .catch(function () {});  // server stopped: keep showing the last copy
  }, 1500);
})();
</script>
</body>
</html>
""")


# -- serving ------------------------------------------------------------------

def _listen(host: str, port: int) -> socket.socket:
    """Bind and listen now, so 'address in use' is a clear error before uvicorn starts,
    and so a browser opened right away waits in the backlog instead of failing."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as e:
        raise DigestError(f"cannot listen on {host}:{port}: {e.strerror}",
                          hint="pass --host 127.0.0.1") from None
    sock = socket.socket(family, kind, proto)
    # As uvicorn does: a restart may reuse a port still in TIME_WAIT. A live
    # listener still makes bind fail on Linux and macOS.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
        sock.listen(128)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise DigestError(f"cannot listen on {host}:{port}: address in use",
                              hint="pass --port") from None
        raise DigestError(f"cannot listen on {host}:{port}: {e.strerror}",
                          hint="pass --host 127.0.0.1 or --port") from None
    return sock


def url_for(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def serve(config: Config, *, host: str, port: int, open_browser: bool) -> None:
    """Serve the preview until Ctrl-C. Raises DigestError if the port is taken."""
    sock = _listen(host, port)
    try:
        app = create_app(config)
        url = url_for(host, port)
        print(f"previewing {config.newsletter.name} at {url} (Ctrl-C to stop)", flush=True)
        if host not in ("127.0.0.1", "localhost", "::1"):
            log.warning("listening on %s: the preview is reachable from other machines", host)
        if open_browser:
            webbrowser.open(url)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        # uvicorn shuts down cleanly on Ctrl-C, then re-raises the signal; for a
        # preview that is the normal way out, not an abort.
        with contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=[sock])
    finally:
        sock.close()


__all__ = ["create_app", "fingerprint", "html_part_size", "serve", "url_for"]
