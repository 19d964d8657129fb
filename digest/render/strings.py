"""The template's fixed words and dates, per newsletter.language (en, de).

A table rather than gettext catalogues or Babel: two languages, a few dozen
strings, exact output and no compiled data files. A template reads them as
``t.key``; add a language by adding a column here and to config's validator.
"""

from __future__ import annotations

from datetime import date
from typing import Any

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "hello": "Hello {name},",
        "reader": "there",
        "intro": "Here is today's selection.",
        "count": "{n} stories in {m} sections",
        "count_one_section": "{n} stories",
        "lead": "Today's lead",
        "also": "also reported by",
        "read": "Read",
        "read_at": "Read the full story at {source}",
        "empty": "No new stories today.",
        "why": "You receive this email because {email} subscribed to {newsletter}.",
        "unsubscribe": "Unsubscribe",
        "manage": "Manage your subscription",
        "manage_subject": "Manage my subscription",
        "view": "View in your browser",
        "image": "Image",
        "logo": "{newsletter}",
        "dropped": "{n} more stories did not fit in this email.",
        "yesterday": "yesterday {time}",
        "day": "{day} {mon}",
        "day_year": "{day} {mon} {year}",
    },
    "de": {
        "hello": "Hallo {name},",
        "reader": "zusammen",
        "intro": "Hier ist die Auswahl des Tages.",
        "count": "{n} Meldungen in {m} Rubriken",
        "count_one_section": "{n} Meldungen",
        "lead": "Das Wichtigste heute",
        "also": "auch berichtet von",
        "read": "Lesen",
        "read_at": "Den ganzen Artikel bei {source} lesen",
        "empty": "Heute gibt es keine neuen Meldungen.",
        "why": "Sie erhalten diese E-Mail, weil {email} {newsletter} abonniert hat.",
        "unsubscribe": "Abbestellen",
        "manage": "Abonnement verwalten",
        "manage_subject": "Mein Abonnement verwalten",
        "view": "Im Browser ansehen",
        "image": "Bild",
        "logo": "{newsletter}",
        "dropped": "{n} weitere Meldungen passten nicht in diese E-Mail.",
        "yesterday": "gestern {time}",
        "day": "{day}. {mon}",
        "day_year": "{day}. {mon} {year}",
    },
}

_DATES: dict[str, dict[str, Any]] = {
    "en": {
        "days": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
        "months": ("January", "February", "March", "April", "May", "June", "July",
                   "August", "September", "October", "November", "December"),
        "long": "{weekday}, {day} {month} {year}",
        "short": "{day} {mon} {year}",
    },
    "de": {
        "days": ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag",
                 "Sonntag"),
        "months": ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August",
                   "September", "Oktober", "November", "Dezember"),
        "long": "{weekday}, {day}. {month} {year}",
        "short": "{day}. {mon} {year}",
    },
}  # fmt: skip


def month_short(day: date, language: str) -> str:
    """'Feb' / 'Feb.'; months of four letters or fewer stay whole ('June', 'März')."""
    month = str(_DATES[language]["months"][day.month - 1])
    return month if len(month) <= 4 else (month[:3] + ("." if language == "de" else ""))


def format_date(day: date, language: str, style: str = "long") -> str:
    """'Friday, 27 November 2026' / 'Freitag, 27. November 2026' ('short': '27 Nov 2026')."""
    names = _DATES[language]
    return str(names[style]).format(
        weekday=names["days"][day.weekday()], day=day.day, month=names["months"][day.month - 1],
        mon=month_short(day, language), year=day.year
    )
