"""Feed dates -> aware UTC datetimes: RFC 822 (RSS), ISO 8601 / RFC 3339 (Atom,
dc:date, JSON Feed), and, through feedparser's parsers, the odder formats of the wild.
A date that is plainly "no date" ("0001-01-01") is None, never a crash.

``news_date`` then says whether a parsed date can date news at all: an item without
one is dated by when digest first saw it (see ``digest.models.Article.dated``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_tz

_ISO = re.compile(
    r"^(\d{4})-?(\d\d)-?(\d\d)(?:[T ](\d\d):?(\d\d)(?::?(\d\d)(?:[.,]\d+)?)?)?\s*"
    r"(Z|UTC|GMT|[+-]\d\d:?\d\d|[+-]\d\d)?$", re.I)


def parse_date(text: str) -> datetime | None:
    """A feed date in UTC: RFC 822 (RSS), ISO 8601/RFC 3339 (Atom, dc:date), or any
    of the odder formats feedparser knows."""
    text = text.strip()
    if not text:
        return None
    when = _iso(text) if text[:4].isdigit() else _rfc822(text)
    if when is None:
        when = _feedparser_date(text)
    # "0001-01-01" is how some CMSs say "no date".
    return when if when is not None and when.year >= 1900 else None


# Before this a date is a CMS's "no date" (Go's zero time "0001-01-01", the Unix epoch).
EARLIEST_YEAR = 1971
# Up to this far ahead, a date is a feed's clock or time zone gone wrong (time zones
# span 26 h): clamped to the collect time. Further ahead it is not when the item was
# published (an event's day, a typo, a placeholder): no date at all.
FUTURE_SLACK = timedelta(hours=26)


def news_date(when: datetime | None, now: datetime) -> datetime | None:
    """``when`` as a publication date seen at ``now``, or None when it cannot date
    news: missing, before EARLIEST_YEAR, or more than FUTURE_SLACK ahead. A date a
    little ahead is clamped to ``now``."""
    if when is None or when.year < EARLIEST_YEAR or when > now + FUTURE_SLACK:
        return None
    return min(when, now)


def _iso(text: str) -> datetime | None:
    m = _ISO.match(text)
    if m is None:
        return None
    y, mo, d, h, mi, s, zone = m.groups()
    try:
        dt = datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0),
                      tzinfo=UTC)
    except ValueError:
        return None
    if zone and zone[0] in "+-":
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        dt -= offset if zone[0] == "+" else -offset
    return dt


_YEAR = re.compile(r"(?<![\d:+-])\d{3,4}(?![\d:])")  # not the zone: "+0000"
# What _rfc822 returns for a date it read as "no date": year 1, which parse_date turns
# into None without asking feedparser (whose import costs a parse worker ~0.1 s).
_NO_DATE = datetime(1, 1, 1, tzinfo=UTC)


def _rfc822(text: str) -> datetime | None:
    parts = parsedate_tz(text)
    if parts is None:
        return None
    year = _YEAR.search(text)
    if year is not None and int(year.group(0)) != parts[0]:
        # "0001": email.utils reads it as 2001, but it means "no date".
        return _NO_DATE if int(year.group(0)) < 1900 else None
    try:
        y, mo, d, h, mi, s = parts[:6]
        dt = datetime(y, mo, d, h, mi, s, tzinfo=UTC)
    except (ValueError, TypeError):
        return None
    return dt - timedelta(seconds=parts[9] or 0)


def _feedparser_date(text: str) -> datetime | None:
    from feedparser.datetimes import _parse_date

    t = _parse_date(text)
    if t is None:
        return None
    try:
        return datetime(t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec,
                        tzinfo=UTC)
    except ValueError:
        return None
