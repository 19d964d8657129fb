"""The long-running commands as a user sees them: progress while working, one
summary line at the end. (pipeline.py does the work; this adds the telling.)"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from digest import console as report
from digest import pipeline, runlog
from digest.config import Config
from digest.errors import DigestError
from digest.files import write_atomic
from digest.pipeline import RunReport
from digest.rank import select as ranker
from digest.render import variant as render
from digest.send import deliver as sender

log = logging.getLogger(__name__)


def send_today(config: Config, *, to: str | None, dry_run: bool) -> None:
    """`digest send`: today's digest to every active subscriber, or --to one address."""
    now = pipeline.utcnow()
    store = pipeline.open_store(config)
    try:
        if not dry_run:
            pipeline.catch_up_files(config, store)
        roster = pipeline.load_roster(config)
        people = pipeline.recipients(config, store, roster, to=to)
        render.check_templates(config)
        if dry_run:
            _dry_run(config, store, people, now)
            return
        password = sender.smtp_password(config)
        digest = pipeline.prepare(config, store, now=now, subscribers=people)
        if digest.empty:
            click.echo("nothing new since the last digest: no email sent")
            return
        run_id = runlog.new_run_id()
        store.start_run(run_id, group="*" if to is None else to, day=digest.day, kind="send",
                        now=now)
        try:
            with runlog.run_context(run_id), report.SendProgress(len(people)) as bar:
                result = pipeline.send_digest(config, store, digest, people, now=now,
                                              password=password, on_progress=bar.advance)
        except BaseException as e:
            store.finish_run(run_id, status="failed", note=str(e)[:500] or type(e).__name__)
            raise
        store.finish_run(run_id, status="ok", selected=len(digest.article_ids), sent=result.sent,
                         deferred=result.deferred, failed=result.failed)
        for email, reply in result.failures:
            click.echo(f"failed: {email}: {report.safe(reply)}", err=True)
        click.echo(report.send_summary(result))
        if result.failed:
            raise click.exceptions.Exit(1)
    finally:
        store.close()


def _dry_run(config: Config, store: pipeline.Store, people: list[pipeline.Subscriber],
             now: pipeline.datetime) -> None:
    digest = pipeline.build_digest(config, store, now=now, subscribers=people)
    done = {d.email for d in store.deliveries(digest.day) if d.status in ("sent", "failed")}
    if digest.empty:
        click.echo("dry run: nothing new since the last digest; nothing would be sent")
        return
    todo = [p for p in people if p.email not in done]
    for p in todo:
        variant = digest.variant_for(ranker.variant_key(p))
        click.echo(f"would send to {p.email}: {variant.subject!r} ({variant.variant})")
    click.echo(f"dry run: would send {len(todo)} of {len(people)} "
               f"({len(people) - len(todo)} already done today); nothing sent")


def render_today(config: Config, out_dir: Path, email: str | None) -> list[Path]:
    """`digest render`: today's edition (or one subscriber's copy) as files."""
    now = pipeline.utcnow()
    store = pipeline.open_store(config)
    try:
        notice = pipeline.frozen_notice(config, store, now=now)
        if notice:
            click.echo(notice, err=True)
            # The frozen edition does not use the templates: check them anyway, so an
            # error in them shows today, not at tomorrow's send.
            render.check_templates(config)
        copy = pipeline.copy_for(config, store, now=now, email=email, edition=email is None)
    finally:
        store.close()
    if copy is None:
        raise DigestError("nothing to render: no stories for today",
                          hint="run 'digest collect' first")
    return write_copy(copy, out_dir)


def run_now(config: Config) -> RunReport:
    """`digest run --once`: one full cycle with progress and a summary."""
    password = sender.smtp_password(config)
    feeds_bar = report.Progress("collecting", len(config.feeds))
    with feeds_bar:
        result = pipeline.run_once(config, password=password, on_feed=feeds_bar.advance)
    click.echo(report.collect_summary(result.feeds))
    failed = report.failed_feeds_line(result.feeds)
    if failed:
        click.echo(f"warning: {report.safe(failed)}", err=True)
    if result.frozen_at is not None:
        click.echo(pipeline.frozen_line(config, result.frozen_at))
    if result.nothing_new:
        click.echo("nothing new since the last digest: no email sent")
        return result
    click.echo(f"digest for {result.day.isoformat()}: {result.stories} articles "
               f"in {result.variants} variants (compiled once each)")
    for email, reply in result.send.failures:
        click.echo(f"failed: {email}: {report.safe(reply)}", err=True)
    click.echo(report.send_summary(result.send))
    if result.send.failed:
        raise DigestError(f"{result.send.failed} recipients failed permanently (see above)")
    return result


def write_copy(copy: pipeline.Copy, out_dir: Path) -> list[Path]:
    """digest.mjml (Jinja output before compiling), digest.html, digest.txt, digest.eml."""
    files = {
        "digest.mjml": copy.rendered.mjml.encode(),
        "digest.html": copy.html.encode(),
        "digest.txt": copy.text.encode(),
        "digest.eml": copy.eml,
    }
    written = []
    for name, data in files.items():
        write_atomic(out_dir / name, data)
        written.append(out_dir / name)
    return written
