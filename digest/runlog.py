"""Logging for operators: every line carries the run id; JSON lines on request.

The run id is a context variable, so a log line from deep inside the sender
still says which run (and time-zone group) it belongs to.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

RUN_ID: ContextVar[str] = ContextVar("digest_run_id", default="-")
FEED_ERROR = "digest_feed_error"  # set on a feed's failure line (see without_feed_errors)

NOISY = ("aiohttp", "httpx", "httpcore", "mail.log", "aiosmtpd", "apscheduler", "asyncio",
         "uvicorn.error", "watchfiles")


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


@contextmanager
def run_context(run_id: str) -> Iterator[str]:
    token = RUN_ID.set(run_id)
    try:
        yield run_id
    finally:
        RUN_ID.reset(token)


def _not_a_feed_error(record: logging.LogRecord) -> bool:
    return not getattr(record, FEED_ERROR, False)


@contextmanager
def without_feed_errors() -> Iterator[None]:
    """Leave out the collector's per-feed failure lines: the caller prints each
    feed's result itself (collect's table), and an error is printed once."""
    handlers = list(logging.getLogger().handlers)
    for h in handlers:
        h.addFilter(_not_a_feed_error)
    try:
        yield
    finally:
        for h in handlers:
            h.removeFilter(_not_a_feed_error)


class _RunIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.run_id = RUN_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line, for log shippers (journald, Loki, CloudWatch...)."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "run_id": getattr(record, "run_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


# C0 and C1 controls, DEL, and the bidi marks, embeddings, overrides and isolates
# (Trojan Source, CVE-2021-42574): each is shown as an escape, never sent raw.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match[str]) -> str:
    n = ord(m.group())
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"


def safe(text: object) -> str:
    """``text`` with every terminal control shown as an escape: ESC becomes ``\\x1b``.

    Here, the lowest layer, because log lines carry outside text too (feed titles,
    server replies); the CLI's tables use it as ``console.safe``."""
    return _UNSAFE.sub(_escape, str(text))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        run_id = getattr(record, "run_id", "-")
        prefix = f"{record.levelname.lower()}: "
        if run_id != "-":
            prefix += f"[{run_id}] "
        # Messages carry outside text (feed titles, server replies): escaped, see safe.
        text = prefix + safe(record.getMessage())
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def setup(verbose: int = 0, debug: bool = False, fmt: str = "text") -> None:
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RunIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Third-party chatter is noise at -v; --debug shows it.
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.WARNING)
