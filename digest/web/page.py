"""The preview page: a View (or an error) -> HTML, through page.html (behaviour: page.js)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import jinja2
from starlette.requests import Request

from digest import pipeline
from digest.errors import DigestError
from digest.models import Subscriber

if TYPE_CHECKING:
    from digest.web.live import Live, View

HERE = Path(__file__).parent  # page.html and page.js
WIDTHS = {"desktop": 700, "mobile": 375}
TABS = {"html": "HTML", "text": "Text", "raw": "Raw message"}


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(HERE), autoescape=True,
                              trim_blocks=True, lstrip_blocks=True,
                              undefined=jinja2.StrictUndefined)


def _people(people: tuple[Subscriber, ...], selected: str | None) -> list[dict[str, Any]]:
    rows = list(people)
    if selected and all(p.email != selected for p in rows):
        # A paused or unknown address asked for by URL still shows as chosen.
        rows.append(Subscriber(email=selected, status="paused"))
    out = []
    for p in rows:
        label = f"{p.name} <{p.email}>" if p.name else p.email
        if p.topics:
            label += f" · {', '.join(p.topics)}"
        if p.format == "text":
            label += " · text only"
        if p.status != "active":
            label += " (not active)"
        out.append({"value": p.email, "label": label, "selected": p.email == selected})
    return out


def _roster(live: Live) -> tuple[Subscriber, ...]:
    """The picker's people on an error page, when the subscriber files still load."""
    if live.error is not None:
        return ()
    try:
        return pipeline.load_roster(live.config).active(live.store.suppressed())
    except DigestError:
        return ()


def _days(view: View | None, config_today: str) -> list[dict[str, Any]]:
    if view is None:
        return [{"value": "", "label": f"Today, {config_today}", "selected": True}]
    today = view.today
    frozen_today = today in view.days
    out = [{"value": "", "selected": view.day == today,
            "label": f"Today, {today:%a %Y-%m-%d}" + (" (frozen)" if frozen_today else " (live)")}]
    out += [{"value": d.isoformat(), "label": f"{d:%a %Y-%m-%d} (stored)",
             "selected": d == view.day} for d in view.days if d != today]
    return out


def render_page(live: Live, request: Request, view: View | None, *,
                error: dict[str, Any] | None = None, desk: dict[str, Any] | None = None) -> str:
    config = live.config
    q = request.query_params
    width = q.get("width") if q.get("width") in WIDTHS else "desktop"
    tab = q.get("tab") if q.get("tab") in TABS else "html"
    dark = q.get("dark") == "1"
    today = pipeline.today(config, live.clock())
    copy = view.copy if view else None
    wanted = copy.subscriber.email if copy else (q.get("subscriber") or None)
    ctx: dict[str, Any] = {
        "name": config.newsletter.name,
        "version": live.version,
        "error": error,
        "copy": copy,
        "desk": desk if copy is not None else None,
        "people": _people(view.people if view else _roster(live), wanted),
        "days": _days(view, today.isoformat()),
        "day_label": (view.day if view else today).isoformat(),
        "widths": WIDTHS, "width": width, "tabs": TABS, "tab": tab, "dark": dark,
        "frozen": bool(view and copy and view.frozen),
        "is_today": bool(view and view.day == view.today),
        "frozen_note": view.frozen_note if view and view.day == view.today else None,
        "state": {"version": live.version, "token": live.token, "subscriber": wanted or "",
                  "day": view.day.isoformat() if view and view.day != view.today else ""},
    }
    if view is not None and copy is not None:
        message = copy.message
        light = frame_query(view, dark=False)
        ctx |= {
            "sender": str(message["From"]),
            "to": str(message["To"]),
            "subject": copy.rendered.subject,
            "preheader": copy.rendered.preheader,
            "query": light,
            "frame_light": "/email.html?" + light,
            "frame_dark": "/email.html?" + frame_query(view, dark=True),
            "text": copy.text,
            "headers": [(k, str(v)) for k, v in message.items()],
            "source": copy.eml.decode("utf-8", "replace").replace("\r\n", "\n"),
            "report": view.report,
        }
        ctx["frame_src"] = ctx["frame_dark"] if dark else ctx["frame_light"]
    return _environment().get_template("page.html").render(ctx)


__all__ = ["render_page"]


def frame_query(view: View, *, dark: bool) -> str:
    params = {"subscriber": view.copy.subscriber.email if view.copy else ""}
    if view.day != view.today:
        params["day"] = view.day.isoformat()
    if dark:
        params["dark"] = "1"
    return urlencode({k: v for k, v in params.items() if v}, safe="@")
