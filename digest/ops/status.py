"""What an operator asks: when does it run next (`digest schedule`) and what
happened (`digest status`)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from typing import Any

import click

from digest import console as report
from digest import pipeline
from digest.config import Config
from digest.ops.schedule import plan


def schedule_rows(config: Config, now: datetime | None = None) -> list[dict[str, Any]]:
    return [p.as_json() for p in plan(config, now or datetime.now(UTC))]


def print_schedule(config: Config) -> None:
    rows = schedule_rows(config)
    columns = [report.Column("group"), report.Column("subscribers", right=True),
               report.Column("next run (local)", whole=True),
               report.Column("next run (UTC)", whole=True, drop=1)]
    report.console.print(report.table(
        f"Schedule: {config.schedule.time} on {', '.join(config.schedule.days)}", columns,
        [(r["group"] + (" (default)" if r["default"] else ""), str(r["subscribers"]),
          _short(r["next_run_local"]), _short(r["next_run_utc"])) for r in rows]))
    report.console.print(f"{len(rows)} groups; misfire grace "
                         f"{config.schedule.misfire_grace_minutes} min")


def warn_subscriber_files(config: Config) -> None:
    """A subscriber file that does not parse, and what the next send does about it, on
    stderr (so `--json` output stays the same shape)."""
    from digest.errors import DigestError
    from digest.subscribers import roster as subs
    from digest.subscribers.last_good import copies_for

    try:
        roster = subs.load(config.subscribers_dir, keep=copies_for(config.db_path))
    except DigestError as e:
        click.echo(f"warning: {report.safe(str(e))}", err=True)
        return
    for b in roster.broken:
        line = b.message() if b.fallback else (
            f"{b.where}: {b.reason}; no good version of this file was ever read: the next "
            "send sends nothing to anyone — fix the file")
        click.echo(f"warning: {report.safe(line)}", err=True)


def _short(iso: str | None) -> str:
    if not iso:
        return "never"
    return datetime.fromisoformat(iso).strftime("%a %Y-%m-%d %H:%M %Z").replace("UTC", "UTC")


def run_rows(config: Config, limit: int) -> list[dict[str, Any]]:
    store = pipeline.open_store(config)
    try:
        rows = store.recent_runs(limit)
    finally:
        store.close()
    return [{"run_id": r["id"], "group": r["grp"], "day": r["day"], "kind": r["kind"],
             "status": r["status"],
             "started": r["started"].isoformat() if r["started"] else None,
             "finished": r["finished"].isoformat() if r["finished"] else None,
             "collected": r["collected"], "selected": r["selected"], "sent": r["sent"],
             "deferred": r["deferred"], "failed": r["failed"], "note": r["note"]}
            for r in rows]


def print_runs(rows: list[dict[str, Any]]) -> None:
    if not rows:
        report.console.print("no runs yet: run `digest run --once`, or start the daemon with "
                             "`digest run`")
        return
    for r in rows:
        if r["status"] == "waiting":  # held for the desk (digest.ops.approval)
            report.console.print(f"group {_cell('group', r['group'])} {r['day']}: "
                                 f"{report.safe(r['note'] or 'waiting for approval')} "
                                 "(`digest desk approve`)")
    cols = ("started", "finished", "group", "kind", "status", "collected", "selected", "sent",
            "deferred", "failed", "note")
    # Narrow terminals lose the columns an operator reads least (in this order).
    drop = {"finished": 5, "kind": 4, "deferred": 3, "collected": 2, "group": 1}
    columns = [report.Column(c, whole=c == "started", drop=drop.get(c, 0),
                             right=c in cols[5:10]) for c in cols]
    report.console.print(report.table("Recent runs (times in UTC)", columns,
                                      [[_cell(c, r[c]) for c in cols] for r in rows]))


def _cell(col: str, value: Any) -> str:
    if col in ("started", "finished"):
        return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S") if value else "—"
    if col == "group":
        return "all" if value == "*" else value or "default"
    return "" if value is None else str(value)


def journal_rows(config: Config, day: date) -> list[dict[str, Any]]:
    store = pipeline.open_store(config)
    try:
        rows = store.deliveries(day)
    finally:
        store.close()
    return [{"email": d.email, "status": d.status, "variant": d.variant, "attempts": d.attempts,
             "message_id": d.message_id, "last_error": d.last_error,
             "updated": d.updated.isoformat() if d.updated else None} for d in rows]


def print_journal(day: date, rows: list[dict[str, Any]]) -> None:
    if not rows:
        report.console.print(f"nobody journaled for {day.isoformat()}: `digest status` lists "
                             f"the runs, `digest send` mails today's digest")
        return
    columns = [report.Column("email", whole=True), report.Column("status"),
               report.Column("attempts", right=True, drop=1),
               report.Column("message id", drop=2), report.Column("last error")]
    report.console.print(report.table(
        f"Delivery journal for {day.isoformat()}", columns,
        [(r["email"], r["status"], str(r["attempts"]), r["message_id"] or "",
          r["last_error"] or "") for r in rows]))
    counts = Counter(r["status"] for r in rows)
    report.console.print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())))


# Above these, mailbox providers start refusing a sender: Gmail and Yahoo's bulk-sender
# rules ask for complaints under 0.1% (0.3% is the hard line) and bounces around 2%.
BOUNCE_WARN = 0.02
COMPLAINT_WARN = 0.001


def bounce_rates(config: Config, day: date) -> dict[str, Any]:
    """The day's bounces and complaints against the messages sent that day."""
    store = pipeline.open_store(config)
    try:
        sent = store.delivery_counts(day)["sent"]
        counts = store.bounce_counts(day)
    finally:
        store.close()
    bounced = counts["hard"] + counts["soft"]
    return {"day": day.isoformat(), "sent": sent, "bounces": bounced,
            "complaints": counts["complaint"],
            "bounce_rate": bounced / sent if sent else 0.0,
            "complaint_rate": counts["complaint"] / sent if sent else 0.0}


def rate_warnings(rates: dict[str, Any]) -> list[str]:
    out = []
    if rates["bounce_rate"] > BOUNCE_WARN:
        out.append(f"bounce rate {rates['bounce_rate']:.1%} on {rates['day']} is above 2%: "
                   "check the list's sources (`digest bounces`)")
    if rates["complaint_rate"] > COMPLAINT_WARN:
        out.append(f"complaint rate {rates['complaint_rate']:.2%} on {rates['day']} is above "
                   "0.1%: providers start refusing mail past 0.3% (`digest bounces`)")
    return out


def print_rates(rates: dict[str, Any], *, as_json: bool) -> None:
    """The rates on stdout (not with --json, whose shape stays), warnings on stderr."""
    if not as_json and (rates["sent"] or rates["bounces"] or rates["complaints"]):
        report.console.print(
            f"{rates['day']}: {rates['bounces']} bounces ({rates['bounce_rate']:.1%}) and "
            f"{rates['complaints']} complaints ({rates['complaint_rate']:.2%}) "
            f"of {rates['sent']} sent")
    for line in rate_warnings(rates):
        click.echo(f"warning: {line}", err=True)
