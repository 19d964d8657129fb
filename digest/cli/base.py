"""What every command shares: the `digest` group, its global options (accepted
before or after a command name), the Ctx they fill, and `user_errors`, which turns
a DigestError into one line and an exit code."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from digest import __version__, runlog
from digest import console as report
from digest.errors import DigestError

if TYPE_CHECKING:
    from digest import config as configuration

F = TypeVar("F", bound=Callable[..., Any])


class Ctx:
    """The global options as given (before and after the command name), and the
    config, loaded on first use."""

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
