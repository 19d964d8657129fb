"""When a story happened, in the reader's time zone and language: "14:05" today,
"yesterday 22:10" ("gestern 22:10"), "16 Feb" ("16. Feb.") when older.

A variant is compiled once for readers in many zones, so the template writes a
token, not the time: ``__dgst_at_<lang>_<published>_<reference>_7c1f__`` with two
Unix times (the story's and the moment the variant was rendered, which "today" is
relative to). Each copy's tokens are filled for its reader's zone when the copy is
personalised (``digest.render.personal``, ``digest.mail.mime``): a cached lookup
per (token, zone), so a zone costs nothing per message. The token carries all it
needs, so a digest frozen in the store shows the same times on a rerun.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from digest.render.strings import STRINGS, month_short

TOKEN = re.compile(r"__dgst_at_([a-z]{2})_(-?\d{1,12})_(-?\d{1,12})_7c1f__")
TOKEN_PATTERN = TOKEN.pattern


def token(published: datetime, reference: datetime, language: str) -> str:
    """The placeholder for ``published``, seen from ``reference`` (the render time)."""
    return (f"__dgst_at_{language}_{int(published.timestamp())}_"
            f"{int(reference.timestamp())}_7c1f__")


def short_day(day: date, language: str, *, year: bool = False) -> str:
    """'16 Feb' / '16. Feb.' (with the year when it is not the reader's current one)."""
    style = "day_year" if year else "day"
    return STRINGS[language][style].format(day=day.day, mon=month_short(day, language),
                                           year=day.year)


def label(published: datetime, reference: datetime, zone: tzinfo, language: str) -> str:
    """How a reader in ``zone`` is told when ``published`` was, at ``reference``."""
    when, now = published.astimezone(zone), reference.astimezone(zone)
    hm = f"{when:%H:%M}"
    days = (now.date() - when.date()).days
    if days == 0:
        return hm
    if days == 1:
        return STRINGS[language]["yesterday"].format(time=hm)
    return short_day(when.date(), language, year=when.year != now.year)


@lru_cache(maxsize=64)
def zone_of(name: str) -> tzinfo:
    # Zones are validated where subscribers and config are read; a zone this
    # machine's tz database lacks still gets a true (UTC) time, not a failed send.
    try:
        return ZoneInfo(name) if name else UTC
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


@lru_cache(maxsize=8192)
def fill(placeholder: str, zone: str) -> str:
    """The text for one time token, for a reader in ``zone`` (an IANA name)."""
    m = TOKEN.fullmatch(placeholder)
    if m is None:
        return ""
    language = m.group(1) if m.group(1) in STRINGS else "en"
    published = datetime.fromtimestamp(int(m.group(2)), UTC)
    reference = datetime.fromtimestamp(int(m.group(3)), UTC)
    return label(published, reference, zone_of(zone), language)


def fill_all(text: str, zone: str) -> str:
    """``text`` with every time token filled for ``zone`` (for one-off copies)."""
    return TOKEN.sub(lambda m: fill(m.group(0), zone), text) if "__dgst_at_" in text else text
