"""The command line: `digest` and its commands, one module per command group.

Each command parses its options, calls one function and prints; the docstrings are
the --help text. The group and what the commands share are in ``base``; importing
the command modules here registers every command on it.
"""

from __future__ import annotations

from digest.cli import (  # noqa: F401  (registers)
    bounces,
    desk,
    feeds,
    ops,
    rank,
    send,
    subscribers,
    web,
)
from digest.cli.base import Ctx, cli, pass_ctx, user_errors

__all__ = ["Ctx", "cli", "main", "pass_ctx", "user_errors"]


def main() -> None:
    cli(prog_name="digest")
