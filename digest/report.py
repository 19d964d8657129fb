"""How results look on a terminal and as JSON. The CLI prints; nothing else does."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from digest.models import FeedResult, SendReport, Story, Subscriber

if TYPE_CHECKING:
    from digest.rank import Ranked

console = Console()
err_console = Console(stderr=True)


def print_json(data: Any) -> None:
    # Plain print: rich would wrap and colour, and scripts parse this.
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def feeds_table(results: Sequence[FeedResult]) -> None:
    table = Table(title="Feeds", show_lines=False)
    for col in ("feed", "status", "items", "new", "error"):
        table.add_column(col, justify="right" if col in ("items", "new") else "left")
    for r in results:
        colour = {"ok": "green", "not_modified": "cyan", "error": "red"}[r.status]
        table.add_row(r.feed, f"[{colour}]{r.status}[/]", str(r.items), str(r.new), r.error or "")
    console.print(table)
    console.print(collect_summary(results))


def collect_summary(results: Sequence[FeedResult]) -> str:
    ok = sum(r.status == "ok" for r in results)
    nm = sum(r.status == "not_modified" for r in results)
    bad = [r for r in results if r.status == "error"]
    new = sum(r.new for r in results)
    line = f"collected {len(results)} feeds: {ok} ok, {nm} not modified, {len(bad)} failed; " \
           f"{new} new articles"
    if bad:
        line += " (" + "; ".join(f"{r.feed}: {r.error}" for r in bad) + ")"
    moved = [r for r in results if getattr(r, "moved_to", None)]
    if moved:
        line += "; moved permanently (update config.toml): " + "; ".join(
            f"{r.feed} -> {r.moved_to}" for r in moved)
    return line


def story_json(story: Story, sections: Sequence[str]) -> dict[str, Any]:
    return {
        "title": story.lead.title,
        "url": story.lead.url,
        "source": story.lead.source,
        "score": story.score,
        "components": dict(story.reasons),
        "topics": list(story.topics),
        "sections": list(sections),
        "articles": [{"url": a.url, "title": a.title, "source": a.source,
                      "published": a.published.isoformat()} for a in story.articles],
    }


def rank_json(ranked: Ranked, *, every: bool = False) -> list[dict[str, Any]]:
    where: dict[int, list[str]] = {}
    for section in ranked.selection.sections:
        for story in section.stories:
            where.setdefault(id(story), []).append(section.title)
    stories = ranked.stories if every else ranked.selection.stories
    return [story_json(s, where.get(id(s), [])) for s in stories]


def rank_table(ranked: Ranked) -> None:
    sel = ranked.selection
    table = Table(title=f"Selection for {sel.day.isoformat()}")
    for col in ("section", "score", "story", "source", "also"):
        table.add_column(col, justify="right" if col == "score" else "left",
                         overflow="fold")
    for section in sel.sections:
        for i, story in enumerate(section.stories):
            table.add_row(section.title if i == 0 else "", f"{story.score:.3f}",
                          story.lead.title, story.lead.source,
                          ", ".join(story.also_reported_by))
    console.print(table)
    console.print(f"selected {len(sel.stories)} of {len(ranked.stories)} stories "
                  f"in {len(sel.sections)} sections")


def send_summary(report: SendReport) -> str:
    line = (f"sent {report.sent:,} of {report.total:,} in {report.seconds:.1f} s, "
            f"{report.failed} failed, {report.deferred} deferred")
    if report.skipped:
        line += f", {report.skipped} already sent earlier"
    return line


def subscribers_table(people: Sequence[Subscriber]) -> None:
    table = Table(title="Subscribers")
    for col in ("email", "name", "topics", "timezone", "format", "status"):
        table.add_column(col)
    for p in people:
        table.add_row(p.email, p.name, ", ".join(p.topics), p.timezone or "", p.format, p.status)
    console.print(table)


def subscriber_json(p: Subscriber) -> dict[str, Any]:
    return {"email": p.email, "name": p.name, "topics": list(p.topics),
            "timezone": p.timezone, "format": p.format, "status": p.status,
            "source": p.source}


class Progress:
    """A rich progress bar on a terminal; nothing (the summary says it all) elsewhere."""

    def __init__(self, description: str, total: int, *, enabled: bool = True) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        self.enabled = enabled and err_console.is_terminal
        self._bar = RichProgress("[progress.description]{task.description}", BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(),
                                 console=err_console, transient=True)
        self._task = self._bar.add_task(description, total=total)

    def __enter__(self) -> Progress:
        if self.enabled:
            self._bar.start()
        return self

    def advance(self, *_: object) -> None:
        if self.enabled:
            self._bar.advance(self._task)

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._bar.stop()


class SendProgress(Progress):
    """The sending bar: done of total, plus sent / deferred / failed and the rate.

    ``advance`` takes each journal outcome (a Delivery); a deferred row that is
    retried later in the run moves from 'deferred' to 'sent' or 'failed'.
    """

    def __init__(self, total: int, *, enabled: bool = True) -> None:
        super().__init__("sending", total, enabled=enabled)
        import time

        self._clock = time.perf_counter
        self._start = self._clock()
        self.sent = self.failed = 0
        self.deferred: set[str] = set()

    def advance(self, *args: object) -> None:
        delivery = args[0] if args else None
        status = getattr(delivery, "status", "sent")
        email = str(getattr(delivery, "email", ""))
        if status == "deferred":
            self.deferred.add(email)
        else:
            self.deferred.discard(email)
            self.sent += status == "sent"
            self.failed += status == "failed"
        if not self.enabled:
            return
        if status != "deferred":
            self._bar.advance(self._task)
        self._bar.update(self._task, description=self.line())

    def line(self) -> str:
        """'sending: 1,203 sent, 3 deferred, 0 failed, 412/s' (also for plain logs)."""
        seconds = max(self._clock() - self._start, 1e-6)
        return (f"sending: {self.sent:,} sent, {len(self.deferred):,} deferred, "
                f"{self.failed:,} failed, {self.sent / seconds:,.0f}/s")
