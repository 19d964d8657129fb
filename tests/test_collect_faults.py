"""Faults, each against a real loopback server: every one ends in a per-feed result,
never a hung or crashed run, and the healthy feed beside it is collected."""

from __future__ import annotations

import contextlib
import gzip
import socket
import threading
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import brotli
import pytest

from digest.collect.collector import collect
from digest.models import Feed, FeedResult
from digest.store.facade import Store
from tests.peers import FeedServer, Route

NOW = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
GOOD = b"""<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Good</title>
<item><title>Fine</title><link>https://good.example/1</link></item></channel></rss>"""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "digest.db")
    yield s
    s.close()


def route(status: int, body: bytes, **headers: str) -> Route:
    def serve(_: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        return status, {k.replace("_", "-"): v for k, v in headers.items()}, body
    return serve


async def run_one(server: FeedServer, store: Store, path: str, serve: Route,
                  **kwargs: object) -> FeedResult:
    """Collect the faulty feed beside a good one; the good one must not suffer."""
    server.routes[f"/{path}"] = serve
    server.routes["/good.xml"] = route(200, GOOD)
    results = await collect([Feed(server.url(path), path), Feed(server.url("good.xml"), "good")],
                            store, now=NOW, **kwargs)  # type: ignore[arg-type]
    assert (results[1].status, results[1].items) == ("ok", 1)
    return results[0]


class RawServer:
    """A TCP server on 127.0.0.1 whose handler gets the bare socket: for responses
    no well-behaved HTTP server would send (dripping, never finishing)."""

    def __init__(self, handle: Callable[[socket.socket, threading.Event], None]) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.handle = handle
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            # An OSError: the client gave up on us, which is the point.
            with contextlib.suppress(OSError):
                self.handle(conn, self.stop)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def __enter__(self) -> RawServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.sock.close()
        self.thread.join(5)


# -- HTTP failures ---------------------------------------------------------------------

async def test_404_and_500(feed_server: FeedServer, store: Store) -> None:
    r = await run_one(feed_server, store, "missing", route(404, b"nope"))
    assert (r.status, r.error) == ("error", "HTTP 404 Not Found")
    r = await run_one(feed_server, store, "boom", route(500, b"oops"))
    assert (r.status, r.error) == ("error", "HTTP 500 Internal Server Error")
    state = store.feed_state(feed_server.url("boom"))
    assert (state.failures, state.last_error) == (1, "HTTP 500 Internal Server Error")


async def test_slow_dripping_response_hits_the_total_timeout(store: Store) -> None:
    def drip(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n<rss>")
        while not stop.wait(0.05):  # a byte at a time: the read timeout never fires
            conn.sendall(b" ")

    with RawServer(drip) as raw:
        results = await collect([Feed(raw.url("drip"), "Drip")], store, now=NOW,
                                timeout=0.5, read_timeout=5)
    assert (results[0].status, results[0].error) == ("error", "timed out after 0.5 s")


async def test_hung_response_times_out(store: Store) -> None:
    def hang(conn: socket.socket, stop: threading.Event) -> None:
        stop.wait(10)  # accepts, reads the request, never answers

    with RawServer(hang) as raw:
        results = await collect([Feed(raw.url("hang"), "Hang")], store, now=NOW, timeout=0.4)
    assert (results[0].status, results[0].error) == ("error", "timed out after 0.4 s")


async def test_oversized_body_is_cut_off(feed_server: FeedServer, store: Store) -> None:
    big = GOOD.replace(b"</channel>", b"<!--" + b"x" * 20000 + b"--></channel>")
    r = await run_one(feed_server, store, "big.xml", route(200, big), max_bytes=4096)
    assert (r.status, r.error) == ("error", "response larger than 4 KB")
    # Without a Content-Length (chunked or closed), the cap holds while streaming.
    def unsized(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
        for _ in range(100):
            conn.sendall(b"y" * 1024)

    with RawServer(unsized) as raw:
        results = await collect([Feed(raw.url("x"), "Unsized")], store, now=NOW, max_bytes=4096)
    assert (results[0].status, results[0].error) == ("error", "response larger than 4 KB")


def _bomb(size: int) -> bytes:
    z = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip wrapper
    block = b"\0" * 2**20
    return b"".join(z.compress(block) for _ in range(size // 2**20)) + z.flush()


async def test_gzip_and_brotli_bombs_stop_at_the_cap(feed_server: FeedServer,
                                                     store: Store) -> None:
    bomb = _bomb(64 * 2**20)  # 64 MB of zeros in ~64 KB
    assert len(bomb) < 2**20
    r = await run_one(feed_server, store, "gz", route(200, bomb, Content_Encoding="gzip"),
                      max_bytes=2**20)
    assert (r.status, r.error) == ("error", "response larger than 1 MB")
    br = brotli.compress(b"\0" * (64 * 2**20), quality=5)
    r = await run_one(feed_server, store, "br", route(200, br, Content_Encoding="br"),
                      max_bytes=2**20)
    assert (r.status, r.error) == ("error", "response larger than 1 MB")


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
async def test_compressed_feeds_are_read(feed_server: FeedServer, store: Store,
                                         encoding: str) -> None:
    body = {"gzip": gzip.compress, "deflate": zlib.compress,
            "br": brotli.compress}[encoding](GOOD)
    r = await run_one(feed_server, store, f"c-{encoding}",
                      route(200, body, Content_Encoding=encoding))
    assert (r.status, r.items) == ("ok", 1)
    _, headers = feed_server.requests[-1]
    assert {"gzip", "deflate", "br"} <= {
        e.strip() for e in headers["Accept-Encoding"].split(",")}


async def test_broken_compression_is_a_clear_error(feed_server: FeedServer,
                                                   store: Store) -> None:
    r = await run_one(feed_server, store, "bad-gz",
                      route(200, b"this is not gzip", Content_Encoding="gzip"))
    assert r.status == "error" and r.error is not None
    assert r.error.startswith("could not decode the response (gzip:")


async def test_redirect_loop_and_chain(feed_server: FeedServer, store: Store) -> None:
    feed_server.routes["/a"] = route(302, b"", Location="/b")
    r = await run_one(feed_server, store, "b", route(302, b"", Location="/a"))
    assert r.status == "error"
    assert r.error == f"redirect loop ({feed_server.url('a')} leads back to {feed_server.url('b')})"
    for i in range(8):
        feed_server.routes[f"/hop{i}"] = route(302, b"", Location=f"/hop{i + 1}")
    r = await run_one(feed_server, store, "hop0", feed_server.routes["/hop0"])
    assert (r.status, r.error) == ("error", "too many redirects (more than 5)")


# -- hostile or broken documents ---------------------------------------------------------

LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE rss [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<rss version="2.0"><channel><title>Laughs</title>
<item><title>&lol9;</title><link>https://laughs.example/1</link>
<description>&lol9;</description></item></channel></rss>"""


def stored_text(store: Store, url: str) -> str:
    """Title, summary and content of the one stored article at url (it must be there)."""
    (a,) = [a for a in store.articles_since(None) if a.url == url]
    return a.title + a.summary + a.content_html


async def test_billion_laughs_is_harmless(feed_server: FeedServer, store: Store) -> None:
    r = await run_one(feed_server, store, "laughs", route(200, LAUGHS))
    # The item is kept with its entity unexpanded: an error here would also pass a
    # check that only looks at stored articles, so the outcome is pinned.
    assert (r.status, r.items) == ("ok", 1)
    text = stored_text(store, "https://laughs.example/1")
    assert "lollol" not in text and len(text) < 200, text[:200]


async def test_external_entities_are_never_resolved(feed_server: FeedServer, store: Store,
                                                    tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    xxe = f"""<?xml version="1.0"?>
<!DOCTYPE rss [
 <!ENTITY file SYSTEM "file://{secret}">
 <!ENTITY web SYSTEM "{feed_server.url('exfiltrate')}">
]>
<rss version="2.0"><channel><title>XXE</title>
<item><title>Leak &file;</title><link>https://xxe.example/1</link>
<description>&web; and &file;</description></item></channel></rss>""".encode()
    r = await run_one(feed_server, store, "xxe", route(200, xxe))
    assert (r.status, r.items) == ("ok", 1)
    text = stored_text(store, "https://xxe.example/1")
    assert "Leak" in text and "TOP-SECRET" not in text, text
    assert all(path != "/exfiltrate" for path, _ in feed_server.requests)


async def test_malformed_xml_still_yields_its_items(feed_server: FeedServer,
                                                    store: Store) -> None:
    body = b"""<rss version="2.0"><channel><title>Bare & broken</title>
    <item><title>Fish & Chips</title><link>https://m.example/1</link></item>
    <item><title>Salt &amp; Vinegar</title><link>https://m.example/2</link></item>
    </channel>"""  # bare '&', and </rss> missing
    r = await run_one(feed_server, store, "malformed", route(200, body))
    assert (r.status, r.items) == ("ok", 2)
    titles = {a.title for a in store.articles_since(None)}
    assert {"Fish & Chips", "Salt & Vinegar"} <= titles


async def test_wrong_charset_is_read_right(feed_server: FeedServer, store: Store) -> None:
    body = ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>W'
            '</title><item><title>Übung macht den Meister – café</title>'
            '<link>https://w.example/1</link></item></channel></rss>').encode("cp1252")
    r = await run_one(feed_server, store, "charset",
                      route(200, body, Content_Type="application/rss+xml; charset=utf-8"))
    assert (r.status, r.items) == ("ok", 1)
    assert "Übung macht den Meister – café" in {a.title for a in store.articles_since(None)}


async def test_garbage_body_is_a_clear_error(feed_server: FeedServer, store: Store) -> None:
    r = await run_one(feed_server, store, "garbage", route(200, bytes(range(256)) * 8))
    assert r.status == "error" and r.error is not None
    assert r.error.startswith("not a feed: ") and "\n" not in r.error


async def test_not_modified_is_not_parsed(feed_server: FeedServer, store: Store) -> None:
    calls: list[str | None] = []

    def serve(req: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        calls.append(req.headers.get("If-Modified-Since"))
        if req.headers.get("If-Modified-Since") == "Fri, 27 Nov 2026 15:30:00 GMT":
            # A 304 with a body that is not a feed: reading it would be an error.
            return 304, {}, b""
        return 200, {"Last-Modified": "Fri, 27 Nov 2026 15:30:00 GMT"}, GOOD

    first = await run_one(feed_server, store, "cond", serve)
    second = await run_one(feed_server, store, "cond", serve)
    assert (first.status, second.status, second.items) == ("ok", "not_modified", 0)
    assert calls == [None, "Fri, 27 Nov 2026 15:30:00 GMT"]


async def test_a_long_header_line_is_read(feed_server: FeedServer, store: Store) -> None:
    """Sites send cookies far over aiohttp's 8 KB default line limit."""
    r = await run_one(feed_server, store, "cookies.xml",
                      route(200, GOOD, Set_Cookie="session=" + "x" * 20000))
    assert (r.status, r.items) == ("ok", 1)
