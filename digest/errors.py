"""User-facing errors. Anything else that escapes is a bug and gets a traceback."""

from __future__ import annotations


class DigestError(Exception):
    """A problem the user can fix: bad config, feed, address or template.

    The CLI prints ``str(error)`` as one line (plus the hint) and exits non-zero.
    """

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(DigestError):
    """config.toml is missing, unreadable or invalid."""

    exit_code = 2


class SubscriberError(DigestError):
    """A subscribers/*.toml file or an address in it is invalid."""


class FeedError(DigestError):
    """A feed could not be fetched or parsed (reported per feed, never fatal to a run)."""


class TemplateError(DigestError):
    """A template failed to render or compile; nothing is sent."""


class DeliveryError(DigestError):
    """The SMTP server could not be reached or refused us before any message went out."""


class StoreError(DigestError):
    """The database cannot be used: damaged, unopenable, or from a newer digest.

    Exit 2, like a bad config: nothing ran, and the operator has to act on the file.
    """

    exit_code = 2


class BusyError(DigestError):
    """A subscriber file or the database is locked by another process for longer than
    the caller may wait; nothing was changed by this attempt. Try again shortly."""


class StoreBusy(StoreError, BusyError):
    """Another process held the database's write lock past the busy timeout.

    Not damage: trying again later works, so it exits 1 like a failed run (and
    `digest serve` answers 503 with Retry-After).
    """

    exit_code = 1


class DeskError(DigestError):
    """A desk edit that cannot be made: today's edition is already going out, an
    unknown section, an empty headline."""


class UnknownStory(DeskError):
    """A story id (or article URL) not in the day's stories. Exit 2, like a bad option."""

    exit_code = 2
