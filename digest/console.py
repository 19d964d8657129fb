"""How results look on a terminal and as JSON. The CLI prints; nothing else does.

Text from outside (feed titles, a server's reason phrase, error texts, subscriber
names) goes through ``safe`` before it reaches a terminal: an ESC or a bidi override
in a feed must not recolour, retitle or reorder the operator's terminal.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from digest import runlog
from digest.models import FeedResult, SendReport, Subscriber

console = Console()
err_console = Console(stderr=True)

# Re-exported: the CLI and its printers know it as console.safe.
safe = runlog.safe


def cell(text: object) -> Text:
    """Outside text for a rich table or line: escaped, and never read as rich markup."""
    return Text(safe(text))


@dataclass(frozen=True)
class Column:
    """A table column. ``whole``: an address or URL, never cut or wrapped; ``drop``:
    left out when the terminal is too narrow (the highest number goes first)."""

    name: str
    whole: bool = False
    drop: int = 0
    right: bool = False


_FOLDED_MIN = 8  # narrowest a folding column gets before columns are dropped instead


def table(title: str, columns: Sequence[Column], rows: Sequence[Sequence[str | Text]], *,
          width: int | None = None) -> Table:
    """A rich table that stays readable at 80 columns: ``whole`` columns keep their
    full text on one line; the others fold; optional columns go when it would not fit."""
    width = width or console.width
    shown = list(range(len(columns)))

    def needed(index: int) -> int:
        col = columns[index]
        longest = max([len(col.name)] + [len(str(r[index])) for r in rows])
        return longest if col.whole else min(longest, max(_FOLDED_MIN, len(col.name)))

    def total() -> int:
        return sum(needed(i) + 3 for i in shown) + 1  # padding and a border per column

    for index in sorted((i for i, c in enumerate(columns) if c.drop),
                        key=lambda i: -columns[i].drop):
        if total() <= width:
            break
        shown.remove(index)
    out = Table(title=title)
    for i in shown:
        col = columns[i]
        out.add_column(col.name, justify="right" if col.right else "left",
                       no_wrap=col.whole, overflow="fold",
                       min_width=needed(i) if col.whole else None)
    for row in rows:
        out.add_row(*[row[i] if isinstance(row[i], Text) else cell(row[i]) for i in shown])
    return out


def print_json(data: Any) -> None:
    # Plain print: rich would wrap and colour, and scripts parse this.
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def feeds_table(results: Sequence[FeedResult]) -> None:
    colours = {"ok": "green", "not_modified": "cyan", "error": "red"}
    rows = [(r.feed, Text(r.status, style=colours[r.status]), str(r.items), str(r.new),
             r.error or "") for r in results]
    console.print(table("Feeds", [Column("feed"), Column("status"), Column("items", right=True),
                                  Column("new", right=True), Column("error")], rows))
    console.print(cell(collect_summary(results)))


def collect_summary(results: Sequence[FeedResult]) -> str:
    """Counts, and the moves config.toml should follow; the errors are printed elsewhere
    (collect's table, or the log), each once."""
    ok = sum(r.status == "ok" for r in results)
    nm = sum(r.status == "not_modified" for r in results)
    bad = [r for r in results if r.status == "error"]
    new = sum(r.new for r in results)
    line = f"collected {len(results)} feeds: {ok} ok, {nm} not modified, {len(bad)} failed; " \
           f"{new} new articles"
    undated = sum(r.undated for r in results)
    if undated:
        backlog = sum(r.backlog for r in results)
        line += f" ({undated} undated, dated by first sight"
        line += f"; {backlog} of them backlog, never ranked)" if backlog else ")"
    moved = [r for r in results if getattr(r, "moved_to", None)]
    if moved:
        line += "; moved permanently (update config.toml): " + "; ".join(
            f"{r.feed} -> {r.moved_to}" for r in moved)
    return line


def failed_feeds_line(results: Sequence[FeedResult]) -> str | None:
    """'2 of 50 feeds failed: A, B' when some failed; None when none did."""
    bad = [r.feed for r in results if r.status == "error"]
    if not bad:
        return None
    return f"{len(bad)} of {len(results)} feeds failed: {', '.join(bad)} " \
           f"(history: digest feeds)"


def send_summary(report: SendReport) -> str:
    line = (f"sent {report.sent:,} of {report.total:,} in {report.seconds:.1f} s, "
            f"{report.failed} failed, {report.deferred} deferred")
    if report.skipped:
        line += f", {report.skipped} already sent earlier"
    return line


def subscribers_table(people: Sequence[Subscriber], *, filtered: bool = False) -> None:
    if not people:
        console.print("no subscribers match those options: `digest subscribers list` shows all"
                      if filtered else
                      "no subscribers: add one with `digest subscribers add EMAIL`")
        return
    columns = [Column("email", whole=True), Column("name"), Column("topics", drop=1),
               Column("timezone", drop=2), Column("format", drop=3), Column("status")]
    rows = [(p.email, p.name, ", ".join(p.topics), p.timezone or "", p.format, p.status)
            for p in people]
    console.print(table("Subscribers", columns, rows))


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
