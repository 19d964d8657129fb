"""The command line. Each command is a few lines that call one function; the
docstrings are the --help text."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from digest import __version__, runlog
from digest import console as report
from digest.errors import DigestError

if TYPE_CHECKING:
    from digest import config as configuration

log = logging.getLogger("digest")
F = TypeVar("F", bound=Callable[..., Any])


class Ctx:
    def __init__(self, config_path: Path, debug: bool, verbose: int = 0,
                 log_format: str = "text") -> None:
        self.config_path = config_path
        self.debug = debug
        self.verbose = verbose
        self.log_format = log_format
        self._config: configuration.Config | None = None

    @property
    def config(self) -> configuration.Config:
        if self._config is None:
            # Imported here: pydantic is a quarter of a second `--help` need not wait.
            from digest import config as configuration

            self._config = configuration.load(self.config_path)
        return self._config

    def merge(self, config_path: Path | None, verbose: int, debug: bool,
              log_format: str | None) -> None:
        """Options given after the command name win over those before it."""
        changed = bool(verbose or debug or log_format)
        if config_path is not None:
            self.config_path, self._config = config_path, None
        self.verbose += verbose
        self.debug = self.debug or debug
        self.log_format = log_format or self.log_format
        if changed:
            runlog.setup(self.verbose, self.debug, self.log_format)


def _global_options() -> list[click.Option]:
    """--config, -v, --debug and --log-format, accepted before or after any command name.

    Made fresh for every command (click keeps per-command state in them). Defaults
    are None/0 here so that an option given only before the command is not undone.
    """
    return [
        click.Option(["--config", "config_path"], type=click.Path(path_type=Path),
                     default=None, help="The config file (default: ./config.toml)."),
        click.Option(["-v", "--verbose"], count=True, help="Say more (info messages)."),
        click.Option(["--debug"], is_flag=True, help="Show tracebacks and library logs."),
        click.Option(["--log-format"], type=click.Choice(["text", "json"]), default=None,
                     help="text or json (one object a line, for log shippers)."),
    ]


_GLOBAL_NAMES = ("config_path", "verbose", "debug", "log_format")


class _TakesGlobalOptions(click.Command):
    """Adds the global options to a command and folds their values into the Ctx,
    so `digest feeds --config X` means what `digest --config X feeds` does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(_global_options())

    def invoke(self, ctx: click.Context) -> Any:
        given = {name: ctx.params.pop(name) for name in _GLOBAL_NAMES}
        obj = ctx.find_object(Ctx)
        if obj is not None:
            obj.merge(**given)
        return super().invoke(ctx)


class DigestCommand(_TakesGlobalOptions):
    pass


class DigestGroup(_TakesGlobalOptions, click.Group):
    """A command group (`digest subscribers`) whose commands take the global options."""

    command_class = DigestCommand
    group_class = type  # groups inside it are DigestGroups too


class RootGroup(click.Group):
    """The `digest` group: it declares the global options itself; its commands add them."""

    command_class = DigestCommand
    group_class = DigestGroup


def user_errors(fn: F) -> F:
    """DigestError → one line on stderr and a non-zero exit; anything else is a bug."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DigestError as e:
            ctx = click.get_current_context()
            if ctx.find_object(Ctx) and ctx.find_object(Ctx).debug:  # type: ignore[union-attr]
                raise
            for line in str(e).splitlines():
                click.echo(f"error: {report.safe(line)}", err=True)
            ctx.exit(e.exit_code)

    return wrapper  # type: ignore[return-value]


@click.group(cls=RootGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              default=Path("config.toml"), show_default=True, help="The config file.")
@click.option("-v", "--verbose", count=True, help="Say more (info messages).")
@click.option("--debug", is_flag=True, help="Show tracebacks and library logs.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="json: one object a line, for log shippers.")
@click.version_option(__version__, prog_name="digest")
@click.pass_context
def cli(ctx: click.Context, config_path: Path, verbose: int, debug: bool,
        log_format: str) -> None:
    """digest: collect the day's news from feeds, rank it, and mail a daily selection.

    \b
    Quick start:
      digest catch &            # a local SMTP catcher on 127.0.0.1:2525
      digest run --once         # collect, rank, render and send now
      digest preview            # see the email in your browser
    """
    runlog.setup(verbose, debug, log_format)
    ctx.obj = Ctx(config_path, debug, verbose, log_format)


pass_ctx = click.make_pass_decorator(Ctx)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print per-feed results as JSON.")
@pass_ctx
@user_errors
def collect(obj: Ctx, as_json: bool) -> None:
    """Fetch every configured feed and store the new articles.

    \b
    Example:
      digest collect
      digest collect --json | jq '.[] | select(.status == "error")'

    \b
    Exit codes:
      0  collected (some feeds may have failed: one warning line names them)
      1  every feed failed, or another problem (one error line says which)
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest import pipeline

    config = obj.config
    store = pipeline.open_store(config)
    # The table (or the JSON) shows each feed's error: the log line would repeat it.
    with runlog.without_feed_errors(), report.Progress(
            "collecting", len(config.feeds), enabled=not as_json) as bar:
        results = pipeline.collect(config, store, now=pipeline.utcnow(), on_result=bar.advance)
    if as_json:
        report.print_json([r.as_json() for r in results])
    else:
        report.feeds_table(results)
    failed = report.failed_feeds_line(results)
    if results and all(r.status == "error" for r in results):
        raise DigestError(f"all {len(results)} feeds failed",
                          hint="errors above; each feed's history: digest feeds")
    if failed:
        click.echo(f"warning: {report.safe(failed)}", err=True)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the feeds' health as JSON.")
@click.option("--revive", metavar="URL|NAME", help="Fetch a gone or waiting feed again.")
@pass_ctx
@user_errors
def feeds(obj: Ctx, as_json: bool, revive: str | None) -> None:
    """Show each feed's health: last success, last error, failures, moved or gone.

    \b
    Example:
      digest feeds
      digest feeds --json | jq '.[] | select(.failures > 2)'
      digest feeds --revive https://example.org/feed.xml

    \b
    Exit codes:
      0  shown (failing feeds too: the table says which)
      1  --revive names no configured feed
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest import pipeline
    from digest.collect import health as feedhealth

    config = obj.config
    store = pipeline.open_store(config)
    if revive:
        click.echo(feedhealth.revive(config, store, revive))
        return
    rows = feedhealth.feed_health(config, store, now=pipeline.utcnow())
    if as_json:
        report.print_json([r.as_json() for r in rows])
    else:
        feedhealth.print_table(rows, report.console)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the stories as JSON.")
@click.option("--all", "every", is_flag=True, help="List every story, not only the selected.")
@click.option("--explain", is_flag=True,
              help="Show each story's score components and its member articles.")
@pass_ctx
@user_errors
def rank(obj: Ctx, as_json: bool, every: bool, explain: bool) -> None:
    """Show today's selection: stories by section, with scores.

    \b
    Example:
      digest rank
      digest rank --explain --all
      digest rank --json | jq '.[0].articles'

    \b
    Exit codes:
      0  shown (an empty day too: it says what to run)
      1  a problem one error line names
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest import pipeline
    from digest.rank import explain as explainer

    config = obj.config
    store = pipeline.open_store(config)
    ranked = pipeline.rank_day(config, store, now=pipeline.utcnow())
    if as_json:
        report.print_json(explainer.rank_json(ranked, every=every))
    elif not ranked.stories:
        click.echo(explainer.nothing_to_rank(store.count_articles(),
                                             config.selection.max_age_hours))
    else:
        explainer.show(ranked, every=every, explain=explain)


@cli.command()
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              required=True, help="Folder to write digest.{mjml,html,txt,eml} into.")
@click.option("--subscriber", "email", help="Render this subscriber's copy.")
@pass_ctx
@user_errors
def render(obj: Ctx, out_dir: Path, email: str | None) -> None:
    """Write today's digest as files: MJML source, HTML, text and the .eml.

    Without --subscriber: the whole edition (every section) for a neutral "Reader";
    with it: that subscriber's own copy, as it would be sent.

    \b
    Example:
      digest render --out out/
      digest render --out out/ --subscriber ada@example.org

    \b
    Exit codes:
      0  the files are written
      1  nothing to render, a template error (even once today's edition is frozen),
         or an unknown subscriber
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest.ops.runner import render_today

    for path in render_today(obj.config, out_dir, email):
        click.echo(path)


@cli.command()
@click.option("--host", default=None, help="Interface to listen on (default from config).")
@click.option("--port", type=int, default=None, help="Port (default from config, 8025).")
@click.option("--no-open", is_flag=True, help="Don't open a browser.")
@pass_ctx
@user_errors
def preview(obj: Ctx, host: str | None, port: int | None, no_open: bool) -> None:
    """Serve the rendered email on 127.0.0.1 and open it in the browser.

    \b
    Example:
      digest preview --port 8030 --no-open

    \b
    Exit codes:
      0  stopped with Ctrl-C
      1  the port is taken, or another problem one error line names
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest.web.preview import serve

    config = obj.config
    serve(config, host=host or config.model.preview.host, port=port or config.model.preview.port,
          open_browser=not no_open)


@cli.command()
@click.option("--to", "to", help="Send to this one address only.")
@click.option("--dry-run", is_flag=True, help="Show who would get what; send nothing.")
@click.option("--test", is_flag=True,
              help="Send one '[TEST]' copy to --to, outside the journal (the real send is "
                   "unaffected).")
@click.option("--subscriber", "subscriber", metavar="EMAIL",
              help="With --test: send this subscriber's copy (default: the preview's first).")
@pass_ctx
@user_errors
def send(obj: Ctx, to: str | None, dry_run: bool, test: bool, subscriber: str | None) -> None:
    """Send today's digest to every active subscriber (each at most once a day).

    \b
    Example:
      digest send --dry-run
      digest send --to ada@example.org
      digest send --test --to me@example.org --subscriber ada@example.org

    \b
    Exit codes:
      0  sent, or nothing new to send
      1  a recipient failed permanently, a template error, the SMTP
         server unreachable or refusing us, or --to names an unsubscribed address
      2  config.toml or the database cannot be used, or a bad option
    """
    if test or subscriber:
        from digest.web.send_test import send_test_command

        send_test_command(obj.config, to=to, subscriber=subscriber, test=test, dry_run=dry_run)
        return
    from digest.ops.runner import send_today

    send_today(obj.config, to=to, dry_run=dry_run)


@cli.command()
@click.option("--once", is_flag=True, help="Run one full cycle now and exit.")
@pass_ctx
@user_errors
def run(obj: Ctx, once: bool) -> None:
    """Run the daily digest: collect, rank, render and send on schedule.

    \b
    Example:
      digest run            # daemon: fires at [schedule] time in its time zone
      digest run --once     # one full cycle now

    \b
    Exit codes:
      0  --once: the cycle ran; the daemon: stopped by SIGTERM or Ctrl-C
      1  a recipient failed permanently, a template error, the SMTP server
         unreachable, or another daemon already runs on this database
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest.ops.runner import run_now
    from digest.ops.schedule import run_daemon

    if once:
        run_now(obj.config)
    else:
        run_daemon(obj.config)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the groups as JSON.")
@pass_ctx
@user_errors
def schedule(obj: Ctx, as_json: bool) -> None:
    """Show the next run of every time-zone group, in local time and UTC.

    \b
    Example:
      digest schedule
      digest schedule --json | jq '.[].next_run_utc'

    \b
    Exit codes:
      0  shown
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest.ops import status

    if as_json:
        report.print_json(status.schedule_rows(obj.config))
    else:
        status.print_schedule(obj.config)


@cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.option("--day", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Show that day's delivery journal instead of the runs.")
@click.option("--limit", type=int, default=20, show_default=True, help="How many runs.")
@pass_ctx
@user_errors
def status_cmd(obj: Ctx, as_json: bool, day: Any, limit: int) -> None:
    """List recent runs (collected, selected, sent, deferred, failed), or a day's journal.

    \b
    Example:
      digest status
      digest status --day 2026-11-27 --json

    \b
    Exit codes:
      0  shown (nothing yet too: it says what to run)
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest.ops import status

    if day is not None:
        rows = status.journal_rows(obj.config, day.date())
        if as_json:
            report.print_json(rows)
        else:
            status.print_journal(day.date(), rows)
        return
    runs = status.run_rows(obj.config, limit)
    status.warn_subscriber_files(obj.config)
    if as_json:
        report.print_json(runs)
    else:
        status.print_runs(runs)


@cli.command()
@click.option("--dir", "folder", type=click.Path(path_type=Path, file_okay=False),
              default=Path("var/caught"), show_default=True, help="Where .eml files go.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=2525, show_default=True)
@user_errors
def catch(folder: Path, host: str, port: int) -> None:
    """A local SMTP server that keeps every message as an .eml file. Mails no one.

    \b
    Example:
      digest catch --dir var/caught --port 2525
      # config.toml: [smtp] host = "127.0.0.1", port = 2525, security = "none"

    \b
    Exit codes:
      0  stopped with Ctrl-C
      1  the port is taken
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest.send.catch import run_catcher

    click.echo(f"catching mail on {host}:{port}, saving to {folder}/ (Ctrl-C to stop)")
    run_catcher(folder, host, port, on_message=lambda p: click.echo(f"received {p}"))


@cli.command()
@pass_ctx
@user_errors
def check(obj: Ctx) -> None:
    """Check the SMTP settings: connect, EHLO, TLS and login, sending nothing.

    \b
    Example:
      SMTP_PASSWORD=... digest check

    \b
    Exit codes:
      0  connected, and logged in when a username is set
      1  cannot connect, no TLS, or the login was refused
      2  config.toml or the database cannot be used, or a bad option
    """
    import asyncio

    from digest.send import deliver as sender

    config = obj.config
    click.echo(asyncio.run(sender.check(config, sender.smtp_password(config))))


@cli.command()
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              default=Path("var/demo"), show_default=True, help="Fresh folder for the demo.")
@pass_ctx
@user_errors
def demo(obj: Ctx, out_dir: Path) -> None:
    """Run the whole day end to end on the bundled feeds, mailing a local catcher.

    \b
    Example:
      digest demo          # what `make demo` runs

    \b
    Exit codes:
      0  the demo day was delivered to its catcher
      1  a problem one error line names
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest.ops.demo import run_demo

    run_demo(obj.config, out_dir)


@cli.group()
def subscribers() -> None:
    """List and edit the subscriber files under subscribers/."""


@subscribers.command("list")
@click.option("--status", type=click.Choice(["active", "paused", "unsubscribed"]))
@click.option("--topic", help="Only subscribers of this topic.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
@user_errors
def subscribers_list(obj: Ctx, status: str | None, topic: str | None, as_json: bool) -> None:
    """List subscribers.

    \b
    Example:
      digest subscribers list --status active --json

    \b
    Exit codes:
      0  listed (none too: it says what to run)
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest.subscribers import commands as cmd

    people = cmd.people(obj.config, status, topic)
    if as_json:
        report.print_json([report.subscriber_json(p) for p in people])
    else:
        report.subscribers_table(people, filtered=bool(status or topic))


@subscribers.command("add")
@click.argument("email")
@click.option("--name", default="")
@click.option("--topics", default="", help="Comma-separated topics.")
@click.option("--timezone", default=None, help="IANA time zone, e.g. Asia/Tokyo.")
@click.option("--list", "list_name", default=None, help="List file (subscribers/<list>.toml).")
@click.option("--format", "fmt", type=click.Choice(["html", "text"]), default="html",
              show_default=True, help="html (with a text part) or text only.")
@pass_ctx
@user_errors
def subscribers_add(obj: Ctx, email: str, name: str, topics: str, timezone: str | None,
                    list_name: str | None, fmt: str) -> None:
    """Add a subscriber (comments and order in the file are kept).

    \b
    Example:
      digest subscribers add lin@example.org --name "Lin" --topics tech,science

    \b
    Exit codes:
      0  added
      1  a bad address, time zone or topic, or already subscribed
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest.subscribers import commands as cmd

    cmd.add(obj.config, email, name=name, topics=topics, timezone=timezone,
            list_name=list_name, fmt=fmt)


@subscribers.command("remove")
@click.argument("email")
@pass_ctx
@user_errors
def subscribers_remove(obj: Ctx, email: str) -> None:
    """Remove a subscriber's entries from every file (an unsubscribe is kept separately).

    \b
    Example:
      digest subscribers remove lin@example.org

    \b
    Exit codes:
      0  removed
      1  the address is in no subscriber file
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest.subscribers import commands as cmd

    cmd.remove(obj.config, email)


@subscribers.command("check")
@click.option("--fix", is_flag=True,
              help="Write unsubscribes the database has but a file does not show yet.")
@pass_ctx
@user_errors
def subscribers_check(obj: Ctx, fix: bool) -> None:
    """Check every subscriber file; list every problem (file:line) and exit 1 if any.

    Also lists drift: an address unsubscribed in the database but still active or
    paused in a file. --fix writes those unsubscribes into the files (comments kept).

    \b
    Example:
      digest subscribers check
      digest subscribers check --fix

    \b
    Exit codes:
      0  no problems (notes may be printed; with --fix: all drift repaired)
      1  at least one problem
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest.subscribers import commands as cmd

    cmd.check(obj.config, fix=fix)


@subscribers.command("pause")
@click.argument("email")
@pass_ctx
@user_errors
def subscribers_pause(obj: Ctx, email: str) -> None:
    """Pause a subscriber: no digests until resumed.

    \b
    Example:
      digest subscribers pause lin@example.org

    \b
    Exit codes:
      0  paused
      1  the address is in no subscriber file
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest.subscribers import commands as cmd

    cmd.set_status(obj.config, email, "paused")


@subscribers.command("resume")
@click.argument("email")
@pass_ctx
@user_errors
def subscribers_resume(obj: Ctx, email: str) -> None:
    """Resume a paused subscriber (not one who unsubscribed: see resubscribe).

    \b
    Example:
      digest subscribers resume lin@example.org

    \b
    Exit codes:
      0  active again
      1  the address is in no subscriber file, or it unsubscribed
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest.subscribers import commands as cmd

    cmd.set_status(obj.config, email, "active")


@subscribers.command("unsubscribe")
@click.argument("email")
@pass_ctx
@user_errors
def subscribers_unsubscribe(obj: Ctx, email: str) -> None:
    """Unsubscribe an address now (e.g. a reply to the mailto link): suppressed for good.

    \b
    Example:
      digest subscribers unsubscribe lin@example.org

    \b
    Exit codes:
      0  unsubscribed (or was already)
      1  not an e-mail address
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest.subscribers import commands as cmd

    cmd.unsubscribe(obj.config, email)


@subscribers.command("resubscribe")
@click.argument("email")
@pass_ctx
@user_errors
def subscribers_resubscribe(obj: Ctx, email: str) -> None:
    """Lift an unsubscribe, with the subscriber's consent: mail them again.

    \b
    Example:
      digest subscribers resubscribe lin@example.org

    \b
    Exit codes:
      0  the suppression is lifted (or there was none)
      1  not an e-mail address
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest.subscribers import commands as cmd

    cmd.resubscribe(obj.config, email)


@subscribers.command("import")
@click.argument("source", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--dry-run", is_flag=True, help="Show what would be imported; write nothing.")
@click.option("--list", "list_name", default=None, help="List file (subscribers/<list>.toml).")
@pass_ctx
@user_errors
def subscribers_import(obj: Ctx, source: Path, dry_run: bool, list_name: str | None) -> None:
    """Import subscribers from a CSV file (any common header names, separators, BOM).

    \b
    Example:
      digest subscribers import people.csv --dry-run
      digest subscribers import people.csv --list newsletter

    \b
    Exit codes:
      0  imported (or, with --dry-run, checked)
      1  a row has a problem (listed)
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest.subscribers import commands as cmd

    cmd.import_csv(obj.config, source, dry_run=dry_run, list_name=list_name)


@subscribers.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv",
              show_default=True)
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write to this file instead of standard output.")
@pass_ctx
@user_errors
def subscribers_export(obj: Ctx, fmt: str, out: Path | None) -> None:
    """Export every subscriber (lists merged, unsubscribes applied) as CSV or JSON.

    \b
    Example:
      digest subscribers export --format json > subscribers.json

    \b
    Exit codes:
      0  exported
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest.subscribers import commands as cmd

    cmd.export(obj.config, fmt, out)


@cli.command()
@click.option("--host", default=None, help="Interface to listen on (default from [serve]).")
@click.option("--port", type=int, default=None, help="Port (default from [serve], 8026).")
@pass_ctx
@user_errors
def serve(obj: Ctx, host: str | None, port: int | None) -> None:
    """Serve the unsubscribe links and the web version of sent digests.

    Put it behind your public newsletter.base_url (a reverse proxy with TLS).

    \b
    Example:
      DIGEST_SECRET=... digest serve --port 8026

    \b
    Exit codes:
      0  stopped with Ctrl-C
      1  the port is taken, or no signing secret can be had
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest.web.serve import serve as run_server

    config = obj.config
    run_server(config, host=host or config.model.serve.host,
               port=port or config.model.serve.port)


def main() -> None:
    cli(prog_name="digest")
