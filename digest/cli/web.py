"""`digest preview` and `digest serve`: the two web servers (the email in a
browser; unsubscribe links and web versions). Heavy imports stay inside the commands."""

from __future__ import annotations

import click

from digest.cli.base import Ctx, cli, pass_ctx, user_errors


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
    from digest.ops import desk
    from digest.web.preview import serve

    config = obj.config
    # The desk's work is digest.ops'; web may not import it (layers), so it is handed in.
    serve(config, host=host or config.model.preview.host, port=port or config.model.preview.port,
          open_browser=not no_open, desk=desk)


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
