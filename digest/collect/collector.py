"""Fetch every configured feed concurrently, parse, sanitize and store the articles.

Polite by default (see ``digest.collect.fetch``): conditional GET, a User-Agent that names
us, global and per-host limits, timeouts, a size cap, bounded redirects. A broken
feed becomes a ``FeedResult`` with one clear line of error; it never stops the run.
Each feed's health (last success, last error, consecutive failures, moved, dead,
Retry-After) is kept in the store and honoured on the next run.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from digest import runlog
from digest.collect.fetch import USER_AGENT, Fetched, Fetcher, FetchError, Limits, size_text
from digest.collect.parse import parse_feed, source_name
from digest.collect.pool import ParsePool
from digest.errors import FeedError
from digest.models import Article, Feed, FeedResult
from digest.store.facade import FeedOutcome, FeedState, Store

if TYPE_CHECKING:
    from digest.config import Config

log = logging.getLogger(__name__)
T = TypeVar("T")

__all__ = ["USER_AGENT", "collect", "collect_for", "collect_sync", "parse_feed"]


@dataclass(frozen=True)
class _Run:
    """What every feed's task shares during one collect."""

    store: Store
    fetcher: Fetcher
    states: dict[str, FeedState]
    now: datetime
    max_bytes: int
    # Every store call goes through this one thread: SQLite sees one writer at a
    # time, and a commit never blocks the event loop that fetches the other feeds.
    writer: ThreadPoolExecutor
    parser: ParsePool
    saver: _Saver

    async def db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.writer, functools.partial(fn, *args, **kwargs))


class _Saver:
    """Feed outcomes written in batches, a few transactions per collect instead of
    one or two per feed (each commit costs milliseconds of CPU the parsers need).

    A batch is written once it holds ``BATCH`` outcomes, or once every feed still
    running is waiting in it: nobody waits for a feed that is still being fetched.
    Runs on the event loop; the SQL runs on the writer thread.
    """

    BATCH = 16

    def __init__(self, store: Store, writer: ThreadPoolExecutor, now: datetime,
                 feeds: int) -> None:
        self.store, self.writer, self.now = store, writer, now
        self.running = feeds  # feeds not finished yet
        self.pending: list[tuple[FeedOutcome, asyncio.Future[int]]] = []
        self.task: asyncio.Task[None] | None = None

    async def save(self, outcome: FeedOutcome) -> int:
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.pending.append((outcome, done))
        self._maybe_write()
        return await done

    def finished(self) -> None:
        """One feed is done, saved or not."""
        self.running -= 1
        self._maybe_write()

    def _ready(self) -> bool:
        return bool(self.pending) and (
            len(self.pending) >= self.BATCH or len(self.pending) >= self.running)

    def _maybe_write(self) -> None:
        if self.task is None and self._ready():
            self.task = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._ready():
                batch, self.pending = self.pending, []
                try:
                    new = await loop.run_in_executor(
                        self.writer, self.store.save_outcomes, [o for o, _ in batch], self.now)
                except Exception as e:  # every feed of the batch hears of it
                    for _, done in batch:
                        done.set_exception(e)
                else:
                    for (_, done), n in zip(batch, new, strict=True):
                        done.set_result(n)
        finally:
            self.task = None


async def collect(feeds: Sequence[Feed], store: Store, *, now: datetime | None = None,
                  on_result: Callable[[FeedResult], None] | None = None,
                  concurrency: int = 16, per_host: int = 2, timeout: float = 60.0,
                  connect_timeout: float = 10.0, read_timeout: float = 20.0,
                  max_bytes: int = 10 * 2**20,
                  parse_workers: int | None = None) -> list[FeedResult]:
    """Fetch, parse and store ``feeds``; return one FeedResult per feed, in order.

    ``on_result`` is called as each feed finishes (in completion order). ``timeout``
    bounds one feed's whole fetch; ``connect_timeout`` and ``read_timeout`` each
    network step; ``max_bytes`` caps a body after decompression. ``parse_workers``
    processes parse the documents (default: one per core; 0 parses in a thread).
    """
    now = now or datetime.now(UTC)
    started = time.perf_counter()
    limits = Limits(concurrency=concurrency, per_host=per_host,
                    connect_timeout=min(connect_timeout, timeout),
                    read_timeout=min(read_timeout, timeout), total_timeout=timeout,
                    max_bytes=max_bytes)
    # One query for every feed's state, instead of one per feed.
    states = {s.url: s for s in store.feed_states()}
    parser = ParsePool(parse_workers)
    try:
        if any(_will_send_a_document(states.get(f.url)) for f in feeds):
            # Forked before the first fetch: ready when the first document is, and
            # before this process has threads of its own (the store's, the resolver's).
            parser.start()
        with ThreadPoolExecutor(1, thread_name_prefix="digest-store") as writer:
            async with Fetcher(limits) as fetcher:
                run = _Run(store, fetcher, states, now, max_bytes, writer, parser,
                           _Saver(store, writer, now, len(feeds)))
                results = await asyncio.gather(*(_one(f, run, on_result) for f in feeds))
    finally:
        await parser.close()
    _log_summary(results, time.perf_counter() - started)
    return list(results)


async def _one(feed: Feed, run: _Run,
               on_result: Callable[[FeedResult], None] | None) -> FeedResult:
    try:
        result = await _collect_one(feed, run)
    finally:
        run.saver.finished()
    if on_result is not None:
        on_result(result)
    return result


def collect_sync(feeds: Sequence[Feed], store: Store, **kwargs: Any) -> list[FeedResult]:
    """``collect`` for callers without an event loop (the CLI, the scheduler)."""
    return asyncio.run(collect(feeds, store, **kwargs))


def collect_for(config: Config, store: Store, *, now: datetime,
                on_result: Callable[[FeedResult], None] | None = None) -> list[FeedResult]:
    """`digest collect` as configured: the feeds, the [collect] limits, then the prune
    of articles older than ``storage.keep_days``."""
    c = config.model.collect
    results = collect_sync(config.feeds, store, now=now, on_result=on_result,
                           concurrency=c.concurrency, per_host=c.per_host, timeout=c.timeout,
                           connect_timeout=c.connect_timeout, read_timeout=c.read_timeout,
                           max_bytes=int(c.max_mb * 2**20), parse_workers=c.parse_workers)
    keep = config.model.storage.keep_days
    if keep:
        pruned = store.prune_articles(now - timedelta(days=keep), now=now)
        if pruned:
            log.info("pruned %d articles older than %d days", pruned, keep)
    return results


async def _collect_one(feed: Feed, run: _Run) -> FeedResult:
    state = run.states.get(feed.url) or FeedState(url=feed.url)
    # Named as the last parse of the feed named it, until this one learns its title.
    name = source_name(feed, state.title or "", state.site or "")
    skip = _skip_reason(state, run.now)
    if skip is not None:
        log.info("%s: %s", name, skip)
        return FeedResult(feed=name, url=feed.url, status="error", error=skip,
                          moved_to=state.moved_to)
    url = state.moved_to or feed.url
    if state.title is None and state.last_success is not None:
        # Collected by a digest that did not keep feed titles: one full GET learns the
        # title that names the outlet (a 304 would not carry it).
        state = replace(state, etag=None, last_modified=None)
    try:
        fetched = await _fetch(url, run, state)
        moved_to = fetched.moved_to or state.moved_to
        if fetched.moved_to:
            log.warning("%s: moved permanently to %s (update config.toml)", name,
                        fetched.moved_to)
        if fetched.body is None:
            await run.saver.save(FeedOutcome(feed.url, name, "not_modified",
                                             moved_to=fetched.moved_to))
            return FeedResult(feed=name, url=feed.url, status="not_modified",
                              moved_to=moved_to)
        # A feed seen before is mostly items we have: those are counted, not reworked.
        known = await run.db(run.store.known_guids, feed.url) \
            if state.last_success is not None else set()
        # Parsing is CPU work (lxml, nh3): off the loop, so fetches go on meanwhile.
        parsed = await run.parser.parse(
            fetched.body, feed, now=run.now, known=known, base_url=fetched.url,
            content_type=fetched.content_type)
    except FeedError as e:
        gone = isinstance(e, FetchError) and e.gone
        wait = e.retry_after if isinstance(e, FetchError) else None
        await run.saver.save(FeedOutcome(feed.url, name, "error", error=e.message,
                                         dead=gone, retry_after=wait))
        # Marked so that a command showing every feed's result itself (collect's table)
        # can leave this line out: each error is printed once.
        log.warning("%s: %s", name, e.message, extra={runlog.FEED_ERROR: True})
        return FeedResult(feed=name, url=feed.url, status="error", error=e.message,
                          moved_to=state.moved_to)
    name = source_name(feed, parsed.title, parsed.site)
    articles = backlog_marked(parsed.articles, first=state.last_success is None)
    new = await run.saver.save(FeedOutcome(
        feed.url, name, "ok", articles, etag=fetched.etag,
        last_modified=fetched.last_modified, moved_to=fetched.moved_to, items=parsed.entries,
        title=parsed.title, site=parsed.site))
    log.debug("%s: %d items, %d new", name, parsed.entries, new)
    undated = [a for a in articles if not a.dated]
    return FeedResult(feed=name, url=feed.url, status="ok", items=parsed.entries, new=new,
                      moved_to=moved_to, undated=len(undated),
                      backlog=sum(a.backlog for a in undated))


def backlog_marked(articles: Sequence[Article], *, first: bool) -> list[Article]:
    """At a feed's first successful collect, its undated items are backlog: they were
    there before digest was, so first sight says nothing of when they were news (a
    Hugo site's About and Projects pages). An undated item a later collect finds is
    new to the feed, and first sight dates it."""
    if not first:
        return list(articles)
    return [replace(a, backlog=True) if not a.dated else a for a in articles]


def _will_send_a_document(state: FeedState | None) -> bool:
    """A feed with nothing to make a GET conditional will answer with a document (so
    will one whose title is still to learn: see _collect_one)."""
    return state is None or state.title is None or not (state.etag or state.last_modified)


def _skip_reason(state: FeedState, now: datetime) -> str | None:
    """Why this feed is not fetched this time: gone for good, or asked to wait."""
    if state.dead_since is not None:
        return (f"gone since {state.dead_since:%Y-%m-%d} (HTTP 410), not fetched; remove it "
                f"from config.toml, or `digest feeds --revive {state.url}` to try again")
    if state.retry_after is not None and state.retry_after > now:
        return (f"the server asked us to wait until {state.retry_after:%Y-%m-%d %H:%M} UTC "
                f"(Retry-After); skipped")
    return None


def _log_summary(results: Sequence[FeedResult], seconds: float) -> None:
    errors = sum(r.status == "error" for r in results)
    log.info("collected %d feeds in %.1f s: %d items, %d new, %d not modified, %d failed",
             len(results), seconds, sum(r.items for r in results), sum(r.new for r in results),
             sum(r.status == "not_modified" for r in results), errors)


# -- fetching ----------------------------------------------------------------

async def _fetch(url: str, run: _Run, state: FeedState) -> Fetched:
    scheme = urlsplit(url).scheme.lower()
    if scheme == "file":
        return await _read_file(url, run.max_bytes)
    if scheme not in ("http", "https"):
        raise FeedError(f"unsupported URL scheme {scheme!r} (use http, https or a file path)")
    return await run.fetcher.get(url, etag=state.etag, last_modified=state.last_modified)


async def _read_file(url: str, max_bytes: int) -> Fetched:
    parts = urlsplit(url)
    host = parts.netloc if parts.netloc not in ("", "localhost") else ""
    path = Path(url2pathname(unquote(f"//{host}{parts.path}" if host else parts.path)))

    def read() -> bytes:
        if path.stat().st_size > max_bytes:
            raise FeedError(f"file larger than {size_text(max_bytes)}: {path}")
        return path.read_bytes()

    try:
        body = await asyncio.to_thread(read)
    except FileNotFoundError:
        raise FeedError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise FeedError(f"not a file but a folder: {path}") from None
    except OSError as e:
        raise FeedError(f"cannot read {path}: {e.strerror or e}") from None
    return Fetched(body, url)
