"""What the `digest subscribers ...` commands print. digest.cli.subscribers parses;
the work is in admin / edit / csv in this package; this module tells the user."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from digest.config import Config
from digest.errors import DigestError, SubscriberError
from digest.files import write_atomic
from digest.store.facade import Store
from digest.subscribers import admin, sync
from digest.subscribers import csv as table_io
from digest.subscribers import edit as edits
from digest.subscribers import roster as subs

log = logging.getLogger(__name__)


def _rel(path: Path) -> str:
    return subs.display(path)


def roster(config: Config) -> subs.Roster:
    """The subscriber files for a `subscribers` command: one line and exit 1 if a file
    cannot be read (these commands report on or edit the files themselves, so a
    last good copy would only hide the problem)."""
    found = subs.load(config.subscribers_dir, tuple(config.topics),
                      keep=sync.copies_for(config.db_path))
    subs.refuse_broken(found)
    for problem in found.problems:
        log.warning("%s (entry skipped)", problem)
    return found


def people(config: Config, status: str | None, topic: str | None) -> list[subs.Subscriber]:
    """`digest subscribers list`: who is in the files, filtered."""
    return [p for p in roster(config).subscribers
            if (status is None or p.status == status) and (topic is None or topic in p.topics)]


def add(config: Config, email: str, *, name: str, topics: str, timezone: str | None,
        list_name: str | None, fmt: str) -> None:
    wanted = [t.strip() for t in topics.split(",") if t.strip()]
    unknown = [t for t in wanted if t not in config.topics]
    if unknown:
        raise DigestError(f"unknown topic {unknown[0]!r}",
                          hint=f"known topics: {', '.join(config.topics)}")
    path = edits.add(config.subscribers_dir, email, name=name, topics=wanted, timezone=timezone,
                    list_name=list_name, format="text" if fmt == "text" else "html")
    address = subs.normalise_email(email)
    click.echo(f"added {address} to {_rel(path)}")
    store = Store.open(config.db_path)
    try:
        suppressed = store.suppression(address)
    finally:
        store.close()
    if suppressed:
        click.echo(f"note: {address} unsubscribed on {suppressed[1]:%Y-%m-%d} and gets nothing "
                   f"until 'digest subscribers resubscribe {address}' (with their consent)",
                   err=True)


def check(config: Config, *, fix: bool = False) -> None:
    """Print every problem and note; exit 1 if there are problems."""
    store = Store.open(config.db_path)
    try:
        result = admin.check(config, store, fix=fix)
    finally:
        store.close()
    for line in result.fixed:
        click.echo(f"fixed: {line}")
    for line in result.problems:
        click.echo(f"error: {line}")
    for line in result.notes:
        click.echo(f"note: {line}")
    click.echo(result.summary())
    if not result.ok:
        raise click.exceptions.Exit(1)


def set_status(config: Config, email: str, status: str) -> None:
    address = subs.normalise_email(email)
    roster(config)
    if status == "paused":
        paths = admin.pause(config, address)
    else:
        store = Store.open(config.db_path)
        try:
            paths = admin.resume(config, store, address)
        finally:
            store.close()
    click.echo(f"{address}: {status} in {', '.join(_rel(p) for p in paths)}")


def remove(config: Config, email: str) -> None:
    address = subs.normalise_email(email)
    roster(config)
    paths = edits.set_status(config.subscribers_dir, address, None)
    click.echo(f"removed {address} from {', '.join(_rel(p) for p in paths)}")


def unsubscribe(config: Config, email: str) -> None:
    store = Store.open(config.db_path)
    try:
        done = admin.unsubscribe(config, store, email, reason="cli")
    finally:
        store.close()
    where = f"; status set in {', '.join(_rel(p) for p in done.files)}" if done.files else ""
    state = "was already unsubscribed" if done.already else "unsubscribed"
    click.echo(f"{done.email} {state}: suppressed, gets no more mail{where}")
    broken = sync.load(config).broken
    if broken:
        # Suppressed all the same (that is what stops the mail), but the address may be
        # in the file that cannot be read: that file needs a human first.
        raise SubscriberError(f"{broken[0].where}: {broken[0].reason}; {done.email} is "
                              "suppressed, but this file cannot be updated until it is fixed",
                              hint="fix it, then run 'digest subscribers check --fix'")
    if done.file_error:
        click.echo(f"warning: file not updated: {done.file_error}", err=True)


def resubscribe(config: Config, email: str) -> None:
    store = Store.open(config.db_path)
    try:
        lifted, paths = admin.resubscribe(config, store, subs.normalise_email(email))
    finally:
        store.close()
    address = subs.normalise_email(email)
    parts = ["suppression lifted" if lifted else "was not suppressed"]
    if paths:
        parts.append(f"active in {', '.join(_rel(p) for p in paths)}")
    else:
        parts.append(f"not in any file: add them with 'digest subscribers add {address}'")
    click.echo(f"{address}: " + "; ".join(parts))


def import_csv(config: Config, source: Path, *, dry_run: bool, list_name: str | None) -> None:
    store = Store.open(config.db_path)
    try:
        current = roster(config)
        target = edits.list_path(config.subscribers_dir, list_name)
        plan = table_io.plan_import(source, target, current, store.suppressed(),
                                    tuple(config.topics))
    finally:
        store.close()
    if not dry_run:
        plan = table_io.apply(plan, config.subscribers_dir)
    columns = ", ".join(f"{k} -> {v}" for k, v in plan.columns.items())
    click.echo(f"columns: {columns}" + (f" (ignored: {', '.join(plan.ignored_columns)})"
                                        if plan.ignored_columns else ""))
    for row in plan.new:
        if dry_run:
            click.echo(f"would add {row.email} (line {row.line})")
    for line in plan.skipped:
        click.echo(f"skipped: {line}")
    for line in plan.problems:
        click.echo(f"error: {line}", err=True)
    click.echo(plan.summary(dry_run=dry_run).replace(str(plan.target), _rel(plan.target)))
    if plan.problems:
        raise click.exceptions.Exit(1)


def export(config: Config, fmt: str, out: Path | None) -> None:
    store = Store.open(config.db_path)
    try:
        rows = table_io.export_rows(roster(config), store.suppressed())
    finally:
        store.close()
    text = table_io.to_csv(rows) if fmt == "csv" else table_io.to_json(rows)
    if out is None:
        click.echo(text, nl=False)
    else:
        write_atomic(out, text.encode("utf-8"))
        click.echo(f"exported {len(rows)} subscribers to {out}", err=True)


__all__ = ["SubscriberError", "add", "check", "export", "import_csv", "remove", "resubscribe",
           "set_status", "unsubscribe"]
