"""`digest feeds add | remove | import | export`: the feed list in config.toml, edited
by command instead of by hand.

Every edit goes through ``digest.config.edit`` (comments and layout kept, atomic,
checked by parsing the result); duplicates are looked for inside that edit, under
its lock, so two commands adding one feed at once list it once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from digest.collect.discover import FeedLink, Found, feed_address, find_feed
from digest.collect.fetch import Fetcher, Limits
from digest.collect.outlet import outlet_name
from digest.config import Config
from digest.config import edit as config_edit
from digest.errors import DigestError, FeedError
from digest.ops import opml


class FeedListError(DigestError):
    """A feed that cannot be added or removed as asked (duplicate, unknown, ambiguous)."""


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def clean_name(text: str) -> str:
    """One line of printable text: a name from a feed or a file must not carry control
    or bidi characters into config.toml and every terminal that shows it."""
    kept = "".join(c for c in text if c.isprintable() or c.isspace())
    return " ".join(kept.split())[:200]


# -- what is the same feed ------------------------------------------------------------

def same_feed_key(url: str) -> str:
    """Addresses that name one feed compare equal: scheme (http or https), host case,
    a default port, a trailing slash and a fragment make no difference."""
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return url.strip()
    if parts.scheme.lower() not in ("http", "https") or not host:
        return url.strip()  # a local path: only the same text is the same feed
    netloc = host if port in (None, 80, 443) else f"{host}:{port}"
    return urlunsplit(("web", netloc, parts.path.rstrip("/"), parts.query, ""))


def _listed(entries: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {same_feed_key(str(e.get("url", ""))): e for e in entries}


def _duplicate(entries: Sequence[Mapping[str, Any]], path: Path, given: str,
               urls: Iterable[str] = ()) -> None:
    """FeedListError if ``given``, or where it led (``urls``), is listed already."""
    listed = _listed(entries)
    for url in dict.fromkeys([given, *urls]):
        hit = listed.get(same_feed_key(url))
        if hit is None:
            continue
        shown = f'{hit["url"]} ("{hit["name"]}")' if hit.get("name") else str(hit["url"])
        what = f"{shown} is" if url == given else f"{given} leads to {shown}, which is"
        raise FeedListError(f"{what} already listed in {path}",
                            hint="nothing added; `digest feeds remove` it first to replace it")


def _check_topics(config: Config, topics: Sequence[str]) -> None:
    unknown = [t for t in topics if t not in config.topics]
    if unknown:
        known = ", ".join(config.topics) or "none: add a [topics.NAME] table first"
        raise FeedListError(f"unknown topic {unknown[0]!r} in {config.path} (known: {known})")


# -- add ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Added:
    """A feed written to config.toml, and how it was found."""

    entry: dict[str, Any]
    found: Found
    config: Path
    total: int  # feeds listed after the edit
    same_name: tuple[str, ...] = ()  # other listed feeds with this name (one outlet)

    @property
    def name(self) -> str:
        return str(self.entry["name"])

    @property
    def url(self) -> str:
        return str(self.entry["url"])

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "items": self.found.items,
                "title": self.found.title, "site": self.found.site or None,
                "page": self.found.page, "moved": self.found.moved,
                "others": [{"url": o.url, "type": o.type, "title": o.title}
                           for o in self.found.others],
                "weight": self.entry.get("weight", 1.0),
                "topics": list(self.entry.get("topics", [])),
                "same_name": list(self.same_name), "config": str(self.config),
                "feeds": self.total}


def limits(config: Config) -> Limits:
    c = config.model.collect
    return Limits(concurrency=1, per_host=1, connect_timeout=min(c.connect_timeout, c.timeout),
                  read_timeout=min(c.read_timeout, c.timeout), total_timeout=c.timeout,
                  max_bytes=int(c.max_mb * 2**20))


def add(config: Config, url: str, *, name: str | None = None, weight: float | None = None,
        topics: Sequence[str] = (), now: datetime | None = None) -> Added:
    """Find the feed at ``url`` (a feed, or a page naming one), read it once, and list it."""
    try:
        address = feed_address(url)
    except FeedError as e:
        raise FeedListError(e.message, hint=e.hint) from None
    _check_topics(config, topics)
    path = config.path
    _duplicate(config_edit.feed_entries(config_edit.snapshot(path).text, path), path, address)
    found = asyncio.run(_find(config, address, now or datetime.now(UTC)))
    entry: dict[str, Any] = {
        "url": found.url,
        "name": clean_name(name or "") or clean_name(outlet_name(found.title, found.site,
                                                                 found.url))}
    if found.site and same_feed_key(found.site) != same_feed_key(found.url):
        entry["site"] = found.site
    if weight is not None:
        entry["weight"] = weight
    if topics:
        entry["topics"] = list(dict.fromkeys(topics))
    seen: list[dict[str, Any]] = []

    def change(text: str) -> str:
        listed = config_edit.feed_entries(text, path)
        _duplicate(listed, path, address, [found.url, found.fetched_url])
        seen[:] = listed
        return config_edit.with_feeds_added(text, path, [entry])

    config_edit.edit(path, change)
    same = tuple(str(e["url"]) for e in seen if e.get("name") == entry["name"])
    return Added(entry, found, path, len(seen) + 1, same)


async def _find(config: Config, url: str, now: datetime) -> Found:
    async with Fetcher(limits(config)) as fetcher:
        return await find_feed(fetcher, url, now=now)


def others_line(others: Sequence[FeedLink]) -> str:
    return ", ".join(f"{o.url} ({o.title})" if o.title else o.url for o in others)


# -- remove ---------------------------------------------------------------------------

def remove(config: Config, key: str) -> tuple[dict[str, Any], int]:
    """Remove the one entry whose url or name is ``key``; (that entry, feeds left)."""
    path = config.path
    removed: list[tuple[dict[str, Any], int]] = []

    def change(text: str) -> str:
        entries = config_edit.feed_entries(text, path)
        index = _match(entries, key, text, path)
        removed[:] = [(entries[index], len(entries) - 1)]
        return config_edit.with_feed_removed(text, path, index)

    config_edit.edit(path, change)
    return removed[0]


def _match(entries: Sequence[Mapping[str, Any]], key: str, text: str, path: Path) -> int:
    wanted = key.strip()
    tries = (
        lambda e: str(e.get("url", "")) == wanted,
        lambda e: str(e.get("name", "")) == wanted,
        lambda e: same_feed_key(str(e.get("url", ""))) == same_feed_key(wanted),
        lambda e: str(e.get("name", "")).casefold() == wanted.casefold(),
    )
    for test in tries:
        hits = [i for i, e in enumerate(entries) if test(e)]
        if len(hits) == 1:
            return hits[0]
        if hits:
            lines = config_edit.header_lines(text)
            listed = "; ".join(f"{entries[i]['url']} (line {lines[i]})" for i in hits)
            raise FeedListError(f"{wanted!r} matches {len(hits)} feeds in {path}: {listed}",
                                hint="give the URL of the one to remove")
    raise FeedListError(f"no feed in {path} has the URL or name {wanted!r}",
                        hint="`digest feeds` lists them")


# -- import ---------------------------------------------------------------------------

@dataclass
class ImportReport:
    source: Path
    config: Path
    dry_run: bool
    added: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[tuple[int, str, str]] = field(default_factory=list)  # line, what, why

    def summary(self) -> str:
        verb = "would add" if self.dry_run else "added"
        return (f"{verb} {plural(len(self.added), 'feed')} to {self.config}, skipped "
                f"{len(self.skipped)} (from {self.source})")

    def as_json(self) -> dict[str, Any]:
        return {"source": str(self.source), "config": str(self.config), "dry_run": self.dry_run,
                "added": self.added,
                "skipped": [{"line": ln, "feed": what, "reason": why}
                            for ln, what, why in self.skipped]}


def import_opml(config: Config, source: Path, *, dry_run: bool = False) -> ImportReport:
    """List every feed of an OPML file not listed yet; nothing is fetched."""
    doc = opml.read_opml(source)
    report = ImportReport(source, config.path, dry_run)
    report.skipped += [(line, title or "(untitled)", "no xmlUrl: not a feed")
                       for line, title in doc.no_url]
    candidates = _candidates(config, doc.feeds, report)

    def change(text: str) -> str:
        listed = _listed(config_edit.feed_entries(text, config.path))
        report.added.clear()
        for line, entry in candidates:
            key = same_feed_key(entry["url"])
            if key in listed:
                report.skipped.append((line, entry["url"], "already listed"))
                continue
            listed[key] = entry
            report.added.append(entry)
        return config_edit.with_feeds_added(text, config.path, report.added)

    if dry_run:
        change(config_edit.snapshot(config.path).text)
    else:
        config_edit.edit(config.path, change)
    report.skipped.sort()
    return report


def _candidates(config: Config, outlines: Sequence[opml.Outline],
                report: ImportReport) -> list[tuple[int, dict[str, Any]]]:
    topics = _topic_names(config)
    out: list[tuple[int, dict[str, Any]]] = []
    for o in outlines:
        try:
            url = feed_address(o.xml_url)
        except FeedError as e:
            report.skipped.append((o.line, o.xml_url[:200], f"refused: {e.message}"))
            continue
        site = _web_or_empty(o.html_url)
        entry: dict[str, Any] = {"url": url, "name": clean_name(outlet_name(o.title, site, url))}
        if site and same_feed_key(site) != same_feed_key(url):
            entry["site"] = site
        if o.weight is not None and o.weight != 1.0:
            entry["weight"] = o.weight
        hinted = [topics[h.casefold()] for h in (*o.folders, *o.categories)
                  if h.casefold() in topics]
        if hinted:
            entry["topics"] = list(dict.fromkeys(hinted))
        out.append((o.line, entry))
    return out


def _topic_names(config: Config) -> dict[str, str]:
    """Folder names that mean a configured topic: its key or its title, any case."""
    names = {}
    for key, topic in config.topics.items():
        names[key.casefold()] = key
        if topic.title:
            names.setdefault(topic.title.casefold(), key)
    return names


def _web_or_empty(url: str) -> str:
    try:
        return feed_address(url) if url else ""
    except FeedError:
        return ""


# -- export ---------------------------------------------------------------------------

def export_opml(config: Config, *, now: datetime | None = None) -> tuple[bytes, list[str]]:
    """OPML 2.0 of the listed web feeds, and the local files left out (other readers
    cannot fetch a path on this machine)."""
    entries, local = [], []
    for f in config.model.feeds:
        if urlsplit(f.url).scheme.lower() not in ("http", "https"):
            local.append(f.url)
            continue
        name = f.name or outlet_name("", f.site, f.url)
        entries.append(opml.Entry(name, f.url, f.site, f.weight, f.topics))
    title = f"{config.newsletter.name}: feeds"
    return opml.write_opml(title, entries, now=now or datetime.now(UTC)), local
