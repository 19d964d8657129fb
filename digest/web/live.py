"""What `digest preview` follows: the config (reloaded as config.toml changes),
the store, and a version that changes whenever an input does.

watchfiles reports edits under templates/, the subscribers folder and to
config.toml as they happen; a cheap fingerprint, polled every two seconds, also
catches store changes (a `digest collect` in another terminal) and anything a
file watcher missed. Open pages follow the version over /events.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from watchfiles import awatch

from digest import config as configuration
from digest import pipeline
from digest.config import Config
from digest.errors import DigestError
from digest.models import Subscriber
from digest.rank import select as ranker
from digest.render import variant as render
from digest.store.facade import Store
from digest.web import checks

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0


class BadRequest(DigestError):
    """A malformed query parameter: the caller's fault (400), not the server's (500)."""


@dataclass(frozen=True)
class View:
    """Everything the page shows for one (subscriber, day)."""

    day: date
    today: date
    people: tuple[Subscriber, ...]
    days: tuple[date, ...]  # digests frozen in the store, newest first
    copy: pipeline.Copy | None
    report: checks.Report | None
    frozen_note: str | None = None  # today's edition is frozen: since when, what it means

    @property
    def frozen(self) -> bool:
        return self.day in self.days


def fingerprint(config: Config, store: Store, day: date | None = None) -> str:
    """Changes whenever anything the preview shows may have changed (with ``day``,
    also the desk's edits of that day's edition, made here or by `digest desk`)."""
    h = hashlib.sha256()
    files = [config.path]
    for folder in (config.templates_dir, config.subscribers_dir):
        files += sorted(folder.rglob("*")) if folder.is_dir() else []
    for path in files:
        with contextlib.suppress(OSError):  # an editor's temp file may vanish meanwhile
            st = path.stat()
            h.update(f"{path}\0{st.st_mtime_ns}\0{st.st_size}\n".encode())
    h.update(f"{store.count_articles()} {store.digest_days()}".encode())
    if day is not None:
        # Every edit, reset and approval adds a row (a reset also marks rows undone).
        rows = store.log_rows(day, "")
        h.update(f" desk {len(rows)} {rows[-1]['id'] if rows else 0}".encode())
    return h.hexdigest()[:16]


# -- live state ---------------------------------------------------------------------

class Live:
    """The config (reloaded as config.toml changes), the store, and a version that
    changes whenever an input does; open pages follow it over /events."""

    def __init__(self, config: Config, *, clock: Callable[[], datetime] | None = None) -> None:
        self.path = config.path
        # Injected by tests to replay a captured day; looked up at each call otherwise.
        self.clock: Callable[[], datetime] = clock or (lambda: pipeline.utcnow())
        self.config = config
        self.error: DigestError | None = None  # config.toml no longer loads
        self.store = pipeline.open_store(config)
        self._stores = [self.store]
        self.token = secrets.token_urlsafe(18)  # guards /send-test and /desk from other sites
        self._boot = secrets.token_hex(4)  # a restarted server differs: pages reload
        self._counter = 0
        self._stamp = ""
        self._listeners: set[asyncio.Queue[str | None]] = set()
        self._rearm: asyncio.Event | None = None
        self._cache: dict[tuple[Any, ...], View] = {}
        self._lock = threading.Lock()
        self.stopped = False

    @property
    def version(self) -> str:
        return f"{self._boot}.{self._counter}"

    # -- change tracking (on the event loop) --
    def bump(self) -> None:
        self._counter += 1
        with self._lock:
            self._cache.clear()
        for queue in self._listeners:
            queue.put_nowait(self.version)

    def listen(self) -> asyncio.Queue[str | None]:
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._listeners.add(queue)
        return queue

    def unlisten(self, queue: asyncio.Queue[str | None]) -> None:
        self._listeners.discard(queue)

    def stop(self) -> None:
        """End every event stream and the watcher, so the server can shut down."""
        self.stopped = True
        for queue in self._listeners:
            queue.put_nowait(None)
        if self._rearm is not None:
            self._rearm.set()

    def reload_config(self) -> None:
        try:
            config = configuration.load(self.path)
        except DigestError as e:
            log.warning("preview: %s", e)
            self.error = e
            return
        if config.db_path != self.config.db_path:
            # Requests may still be using the old store: close it only at shutdown.
            self.store = pipeline.open_store(config)
            self._stores.append(self.store)
        self.config, self.error = config, None

    def stamp(self) -> str:
        return fingerprint(self.config, self.store, pipeline.today(self.config, self.clock()))

    async def _changed(self, *, config_file: bool) -> None:
        if config_file:
            await asyncio.to_thread(self.reload_config)
        self._stamp = await asyncio.to_thread(self.stamp)
        self.bump()

    async def changed(self) -> None:
        """The preview itself changed an input (a desk edit): rebuild and tell the pages,
        now rather than at the next poll."""
        await self._changed(config_file=False)

    async def watch(self) -> None:
        """Follow file changes as they happen (watchfiles: inotify, FSEvents, ...)."""
        while not self.stopped:
            rearm = self._rearm = asyncio.Event()
            cfg = self.config
            paths = [p for p in (cfg.templates_dir, cfg.subscribers_dir, self.path) if p.exists()]
            try:
                async with contextlib.aclosing(awatch(*paths, stop_event=rearm, step=50)) as it:
                    async for changes in it:
                        touched = {Path(p) for _, p in changes}
                        await self._changed(config_file=self.path in touched)
                        if self.path in touched:
                            break  # editors replace the file: watch the new one
            except (OSError, RuntimeError) as e:
                log.warning("preview: cannot watch %s (%s); checking every %g s instead",
                            ", ".join(map(str, paths)), e, POLL_SECONDS)
                await rearm.wait()

    async def poll(self) -> None:
        """Every few seconds: the store (collect, send) and what a watcher may miss."""
        self._stamp = await asyncio.to_thread(self.stamp)
        while not self.stopped:
            await asyncio.sleep(POLL_SECONDS)
            config_stamp = _stat(self.path)
            stamp = await asyncio.to_thread(self.stamp)
            if stamp != self._stamp:
                await self._changed(config_file=config_stamp != self._config_stamp)
                if self._rearm is not None:
                    self._rearm.set()  # the watcher missed it: start it afresh
            self._config_stamp = config_stamp

    _config_stamp: tuple[int, int] | None = None

    # -- views (in worker threads) --
    def view(self, email: str | None, day: date | None) -> View:
        config, store = self.config, self.store
        now = self.clock()
        key = (self.version, email, day, pipeline.today(config, now))
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None:
            return hit
        roster = pipeline.load_roster(config)
        people = roster.active(store.suppressed())
        days = tuple(store.digest_days())
        today = key[-1]
        if day is not None and day != today and day not in days:
            raise BadRequest(f"no digest stored for {day.isoformat()}",
                              hint="pick a day from the list")
        day = day or today
        if day in days:
            # A frozen day shows the stored HTML, not the templates: check them anyway,
            # so an error in them is on the page now, not at the next send.
            render.check_templates(config)
        copy = pipeline.copy_for(config, store, now=now, email=email, day=day)
        report = None
        if copy is not None:
            selection = None if day in days else ranker.for_variant(
                pipeline.rank_day(config, store, now=now, day=day), config,
                ranker.variant_key(copy.subscriber))
            report = checks.run(copy, config, selection=selection,
                                roster_problems=roster.problems)
        view = View(day=day, today=today, people=people, days=days, copy=copy, report=report,
                    frozen_note=pipeline.frozen_notice(config, store, now=now))
        with self._lock:
            self._cache[key] = view
        return view

    def close(self) -> None:
        for store in self._stores:
            store.close()


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size
