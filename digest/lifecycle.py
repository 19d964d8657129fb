"""Process-wide stop flag: set on SIGTERM/SIGINT so long work ends between messages.

The sender asks for each message's bytes just before sending it; once a stop
is requested that request raises ``Stopping``, the row goes back to pending,
and messages already in an SMTP transaction finish normally.
"""

from __future__ import annotations

import threading

from digest.errors import DigestError

_STOP = threading.Event()


class Stopping(DigestError):
    """A stop was requested; unsent recipients stay pending for the next run."""


def request_stop() -> None:
    _STOP.set()


def stopping() -> bool:
    return _STOP.is_set()


def check() -> None:
    if _STOP.is_set():
        raise Stopping("stopped by signal; unsent recipients stay pending")


def reset() -> None:
    """For tests that run several daemons in one process."""
    _STOP.clear()
