"""`digest send`, `digest check` and `digest catch`: mail the digest, check the
SMTP settings, catch mail locally. Heavy imports stay inside the commands."""

from __future__ import annotations

from pathlib import Path

import click

from digest.cli.base import Ctx, cli, pass_ctx, user_errors


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
