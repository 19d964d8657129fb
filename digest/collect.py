"""Fetch every configured feed concurrently, parse, sanitize and store the articles.

Polite by default: conditional GET with the validators of the last good fetch, a
User-Agent that names us, a timeout and a size cap per feed, bounded redirects and
bounded concurrency. A broken feed becomes a ``FeedResult`` with one clear line of
error; it never stops the run.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import httpx

from digest import __version__
from digest.errors import FeedError
from digest.feedparse import parse_feed
from digest.models import Feed, FeedResult
from digest.store import Store

log = logging.getLogger(__name__)

USER_AGENT = f"digest/{__version__} (+https://github.com/digest)"
MAX_REDIRECTS = 5
_ACCEPT = ("application/rss+xml, application/atom+xml, application/feed+json, "
           "application/rdf+xml;q=0.9, application/xml;q=0.9, text/xml;q=0.8, */*;q=0.5")

__all__ = ["USER_AGENT", "collect", "collect_sync", "parse_feed"]


@dataclass(frozen=True)
class _Fetched:
    body: bytes | None  # None: the server said 304 Not Modified
    url: str  # where the body really came from, after redirects
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class _Run:
    """What every feed's task shares during one collect."""

    store: Store
    client: httpx.AsyncClient
    semaphore: asyncio.Semaphore
    now: datetime
    timeout: float
    max_bytes: int


async def collect(feeds: Sequence[Feed], store: Store, *, now: datetime | None = None,
                  client: httpx.AsyncClient | None = None,
                  on_result: Callable[[FeedResult], None] | None = None,
                  concurrency: int = 8, timeout: float = 20.0,
                  max_bytes: int = 10 * 2**20) -> list[FeedResult]:
    """Fetch, parse and store ``feeds``; return one FeedResult per feed, in order.

    ``on_result`` is called as each feed finishes (in completion order). ``timeout``
    bounds one feed's whole fetch; ``max_bytes`` caps its (decompressed) body.
    """
    now = now or datetime.now(UTC)
    started = time.perf_counter()
    own_client = client is None
    if client is None:
        client = httpx.AsyncClient(follow_redirects=True, max_redirects=MAX_REDIRECTS,
                                   timeout=httpx.Timeout(timeout))
    run = _Run(store, client, asyncio.Semaphore(max(1, concurrency)), now, timeout, max_bytes)

    async def one(feed: Feed) -> FeedResult:
        result = await _collect_one(feed, run)
        if on_result is not None:
            on_result(result)
        return result

    try:
        results = await asyncio.gather(*(one(f) for f in feeds))
    finally:
        if own_client:
            await client.aclose()
    _log_summary(results, time.perf_counter() - started)
    return list(results)


def collect_sync(feeds: Sequence[Feed], store: Store, **kwargs: Any) -> list[FeedResult]:
    """``collect`` for callers without an event loop (the CLI, the scheduler)."""
    return asyncio.run(collect(feeds, store, **kwargs))


async def _collect_one(feed: Feed, run: _Run) -> FeedResult:
    # Store calls stay on the loop thread: SQLite then sees one writer at a time,
    # and each call is a few milliseconds.
    state = run.store.feed_state(feed.url)
    try:
        async with run.semaphore:
            fetched = await _fetch(feed.url, run, etag=state.etag,
                                   last_modified=state.last_modified)
        if fetched.body is None:
            run.store.record_feed(feed.url, feed.name, "not_modified", now=run.now)
            log.debug("%s: not modified", feed.name)
            return FeedResult(feed=feed.name, url=feed.url, status="not_modified")
        # feedparser is pure Python and slow on big feeds; keep the loop free meanwhile.
        articles = await asyncio.to_thread(parse_feed, fetched.body, feed, now=run.now,
                                           base_url=fetched.url)
    except FeedError as e:
        run.store.record_feed(feed.url, feed.name, "error", error=e.message, now=run.now)
        log.warning("%s: %s", feed.name, e.message)
        return FeedResult(feed=feed.name, url=feed.url, status="error", error=e.message)
    new = run.store.add_articles(articles, run.now)
    run.store.record_feed(feed.url, feed.name, "ok", etag=fetched.etag,
                          last_modified=fetched.last_modified, now=run.now)
    log.debug("%s: %d items, %d new", feed.name, len(articles), new)
    return FeedResult(feed=feed.name, url=feed.url, status="ok", items=len(articles), new=new)


def _log_summary(results: Sequence[FeedResult], seconds: float) -> None:
    errors = sum(r.status == "error" for r in results)
    log.info("collected %d feeds in %.1f s: %d items, %d new, %d not modified, %d failed",
             len(results), seconds, sum(r.items for r in results), sum(r.new for r in results),
             sum(r.status == "not_modified" for r in results), errors)


# -- fetching ----------------------------------------------------------------

async def _fetch(url: str, run: _Run, *, etag: str | None,
                 last_modified: str | None) -> _Fetched:
    scheme = urlsplit(url).scheme.lower()
    if scheme == "file":
        return await _read_file(url, run.max_bytes)
    if scheme not in ("http", "https"):
        raise FeedError(f"unsupported URL scheme {scheme!r} (use http, https or a file path)")
    try:
        # httpx's timeout is per network operation; this bounds the whole fetch, so a
        # server dripping one byte at a time cannot hold the run up.
        async with asyncio.timeout(run.timeout):
            return await _get(url, run, etag=etag, last_modified=last_modified)
    except (TimeoutError, httpx.TimeoutException):
        raise FeedError(f"timed out after {run.timeout:g} s") from None
    except httpx.TooManyRedirects:
        raise FeedError(f"too many redirects (more than {MAX_REDIRECTS})") from None
    except httpx.HTTPError as e:
        raise FeedError(_network_error(e)) from None


async def _get(url: str, run: _Run, *, etag: str | None, last_modified: str | None) -> _Fetched:
    headers = {"User-Agent": USER_AGENT, "Accept": _ACCEPT}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    async with run.client.stream("GET", url, headers=headers, follow_redirects=True) as resp:
        final = str(resp.url)
        if resp.status_code == 304:
            return _Fetched(None, final)
        if not resp.is_success:
            reason = resp.reason_phrase or ""
            raise FeedError(f"HTTP {resp.status_code} {reason}".strip())
        too_big = f"response larger than {_size(run.max_bytes)}"
        declared = resp.headers.get("Content-Length", "")
        # Only trust it when not compressed: the cap is on the decoded body.
        if declared.isdigit() and int(declared) > run.max_bytes and \
                not resp.headers.get("Content-Encoding"):
            raise FeedError(too_big)
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.aiter_bytes():
            size += len(chunk)
            if size > run.max_bytes:  # checked while streaming: a gzip bomb stops here too
                raise FeedError(too_big)
            chunks.append(chunk)
        return _Fetched(b"".join(chunks), final, resp.headers.get("ETag"),
                        resp.headers.get("Last-Modified"))


async def _read_file(url: str, max_bytes: int) -> _Fetched:
    parts = urlsplit(url)
    host = parts.netloc if parts.netloc not in ("", "localhost") else ""
    path = Path(url2pathname(unquote(f"//{host}{parts.path}" if host else parts.path)))

    def read() -> bytes:
        if path.stat().st_size > max_bytes:
            raise FeedError(f"file larger than {_size(max_bytes)}: {path}")
        return path.read_bytes()

    try:
        body = await asyncio.to_thread(read)
    except FileNotFoundError:
        raise FeedError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise FeedError(f"not a file but a folder: {path}") from None
    except OSError as e:
        raise FeedError(f"cannot read {path}: {e.strerror or e}") from None
    return _Fetched(body, url)


def _network_error(e: httpx.HTTPError) -> str:
    """One line for a transport failure, from the OS error under httpx's wrappers."""
    cause: BaseException | None = e
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError) or getattr(cause, "errno", None) == \
                errno.ECONNREFUSED:
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return "host not found"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate not trusted ({cause.verify_message})"
        if isinstance(cause, ssl.SSLError):
            return f"TLS error ({cause.reason or cause})"
        cause = cause.__cause__ or cause.__context__
    text = str(e).strip()
    if isinstance(e, httpx.ConnectError):
        return "connection refused" if "refused" in text.lower() else f"could not connect ({text})"
    if isinstance(e, httpx.RemoteProtocolError):
        return f"the server broke the connection ({text or 'protocol error'})"
    if isinstance(e, httpx.DecodingError):
        return f"could not decode the response ({text})"
    if isinstance(e, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return f"invalid URL ({text})"
    return f"network error ({text or type(e).__name__})"


def _size(n: int) -> str:
    for unit, scale in (("MB", 2**20), ("KB", 2**10)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"
