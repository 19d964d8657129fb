"""The editor's desk in `digest preview`: today's stories with their actions (pin,
drop, lead, move, headline, blurb, undo), the note and Approve, as POSTs to /desk.

The work is digest.ops.desk's, the same functions `digest desk` runs; the web layer
may not import ops (the layer contract: web and ops are siblings), so the CLI hands
that module in (``create_app(desk=...)``) and this module only speaks to it through
``DeskOps``. Without it the preview has no desk panel and /desk answers 404.

Each edit is recorded with who ("preview", or the name typed in the panel) and then
bumps the live version, so the page and its email frame rebuild with the edit.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from datetime import date, datetime
from typing import Any, Protocol

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from digest.config import Config
from digest.errors import DeskError, DigestError, UnknownStory
from digest.models import EditKind
from digest.rank.select import planned_sections
from digest.web.live import Live

log = logging.getLogger(__name__)

BY_DEFAULT = "preview"  # who an edit from the page is by, unless the editor gives a name
MAX_BY = 80
# Actions a request may ask for, and the edit kind each records.
KINDS: dict[str, EditKind] = {"pin": "pin", "drop": "drop", "lead": "lead", "move": "move",
                              "headline": "headline", "blurb": "blurb", "note": "note"}
ACTIONS = frozenset({*KINDS, "reset", "approve"})


class DeskView(Protocol):
    """What ops.desk.show returns, as far as the panel reads it."""

    @property
    def edited(self) -> frozenset[str]: ...

    def as_json(self) -> dict[str, Any]: ...


class DeskOps(Protocol):
    """digest.ops.desk, as the preview uses it (the module itself satisfies this)."""

    def day_for(self, config: Config, now: datetime, day: date | None, group: str) -> Any: ...

    def show(self, config: Config, d: Any) -> DeskView: ...

    def edit(self, config: Config, d: Any, kind: EditKind, target: str = "", *,
             text: str = "", position: int | None = None, by: str = "") -> Any: ...

    def reset(self, config: Config, d: Any, ident: str | None, *, by: str = "") -> int: ...

    def approve(self, config: Config, d: Any, *, by: str = "") -> Any: ...


class Desk:
    """The desk of one preview server: its ops, and the panel per live version."""

    def __init__(self, ops: DeskOps, live: Live) -> None:
        self.ops = ops
        self.live = live
        self._cache: tuple[tuple[str, Any], dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def _day(self) -> Any:
        # The preview shows the newsletter's own edition (group ""): the desk edits that.
        return self.ops.day_for(self.live.config, self.live.clock(), None, "")

    def panel(self) -> dict[str, Any]:
        """Today's edition as edited, for page.html (in a worker thread)."""
        d = self._day()
        key = (self.live.version, d.day)  # a new version, or past midnight: afresh
        with self._lock:
            if self._cache is not None and self._cache[0] == key:
                return self._cache[1]
        config = self.live.config
        view = self.ops.show(config, d)
        data = view.as_json()
        edited = view.edited
        rows: list[dict[str, Any]] = []
        for section in data["sections"]:
            for s in section["stories"]:
                rows.append({**s, "section": section["title"], "place": len(rows) + 1,
                             "in": True, "edited": s["id"] in edited})
        rows += [{**s, "section": "", "place": None, "in": False,
                  "edited": s["id"] in edited} for s in data["not_selected"]]
        out = {**data, "rows": rows, "count": sum(r["in"] for r in rows),
               "section_titles": list(dict.fromkeys(
                   p.title for p in planned_sections(config, "all"))),
               "frozen": data["frozen_at"] is not None}
        with self._lock:
            self._cache = (key, out)
        return out

    def act(self, body: dict[str, Any]) -> str:
        """One action from the page; returns what was done, for the page to say."""
        action = str(body.get("action") or "")
        if action not in ACTIONS:
            raise BadAction(f"unknown desk action {action!r}")
        story = str(body.get("story") or "").strip()
        text = str(body.get("text") or "")
        by = " ".join(str(body.get("by") or "").split())[:MAX_BY] or BY_DEFAULT
        config, d = self.live.config, self._day()
        if action == "approve":
            self.ops.approve(config, d, by=by)
            return "approved"
        if action == "reset":
            n = self.ops.reset(config, d, story or None, by=by)
            return f"{n} edit{'s' if n != 1 else ''} undone"
        # One report out of its story: `digest desk drop URL`.
        url = str(body.get("url") or "").strip() if action == "drop" else ""
        if action != "note" and not (story or url):
            raise BadAction(f"{action}: which story?")
        self.ops.edit(config, d, KINDS[action], url or story, text=text,
                      position=_position(body.get("position")), by=by)
        return f"{action}: done"

    def frozen(self) -> bool:
        d = self._day()
        return self.live.store.sending_began(d.day, d.group) is not None


class BadAction(DeskError):
    """A malformed desk request from the page (400)."""


def _position(value: Any) -> int | None:
    if value in (None, ""):
        return None
    try:
        at = int(value)
    except (TypeError, ValueError):
        raise BadAction(f"position {value!r} is not a number") from None
    if at < 1:
        raise BadAction("a position counts from 1 (the lead)")
    return at


async def handle(desk: Desk | None, request: Request) -> JSONResponse:
    """POST /desk: {"action", "story", "text", "position", "url", "by"} with the page's
    token (``url``: drop that one report of the story)."""
    if desk is None:
        return JSONResponse({"ok": False, "error": "this preview has no desk"}, 404)
    # The same guard as /send-test: only the preview page knows the token, and
    # another site can neither set this header nor read the page to learn it.
    if not secrets.compare_digest(request.headers.get("x-preview-token", ""), desk.live.token):
        return JSONResponse({"ok": False, "error": "missing or wrong preview token"}, 403)
    try:
        body = json.loads(await request.body())
        if not isinstance(body, dict):
            raise ValueError
    except ValueError:
        return JSONResponse({"ok": False, "error": "malformed request"}, 400)
    try:
        done = await run_in_threadpool(desk.act, body)
    except DigestError as e:
        # One line, the CLI's own (`error: ...` there): the page shows it as is.
        log.warning("preview: desk: %s", e)
        status = 404 if isinstance(e, UnknownStory) else \
            409 if await run_in_threadpool(desk.frozen) else 400
        return JSONResponse({"ok": False, "error": str(e)}, status)
    await desk.live.changed()  # the rebuild: the page and its email frame reload
    return JSONResponse({"ok": True, "detail": done, "version": desk.live.version})


__all__ = ["BY_DEFAULT", "Desk", "DeskOps", "handle"]
