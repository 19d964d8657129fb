"""The editor's desk in `digest preview`, in Debian's headless Chromium (Playwright):
pin, drop and rewrite from the page and see the email frame change, the store hold
the edits with who, undo, the keyboard, the token, and refusal once sending began.

The day is the real one (tests/data/realday, 14 feeds) replayed at 2026-02-18 07:00
UTC: collected on that clock, and the preview given the same clock (``clock=``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from digest import pipeline
from digest.config import Config
from digest.ops import desk as ops
from digest.web.desk import BY_DEFAULT
from digest.web.preview import create_app
from tests.peers import FeedServer
from tests.preview_site import ARTIFACTS, Running
from tests.test_preview_browser import WAIT
from tests.test_realday import NOW, REALDAY
from tests.test_realday import _project as realday_project

if TYPE_CHECKING:
    from playwright.sync_api import Browser, FrameLocator, Page

pytestmark = pytest.mark.browser
DAY = NOW.date()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(WAIT)
    yield tab
    context.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Config]:
    """The real day collected at NOW into a fresh project (mail goes nowhere here)."""
    served = tmp_path / "served"
    shutil.copytree(REALDAY, served)
    with FeedServer(served) as server:
        names = sorted(p.name for p in served.iterdir() if p.is_file())
        config = realday_project(tmp_path, [server.url(n) for n in names], 2525)
        # Playwright's sync API keeps an event loop running in this thread, and
        # collect runs its own: in a thread of its own.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(_collect, config).result()
    yield config


def _collect(config: Config) -> None:
    store = pipeline.open_store(config)
    try:
        pipeline.collect(config, store, now=NOW)
    finally:
        store.close()


@pytest.fixture
def preview(site: Config) -> Iterator[Running]:
    with Running(site, desk=ops, clock=lambda: NOW, watch=False) as running:
        yield running


def edits(config: Config) -> list[tuple[str, str, str]]:
    store = pipeline.open_store(config)
    try:
        return [(e.kind, e.story, e.by) for e in store.edits(DAY, "")]
    finally:
        store.close()


def first_ids(config: Config) -> list[str]:
    """The edition's story ids as `digest desk show` has them."""
    view = ops.show(config, ops.day_for(config, NOW, None, "")).as_json()
    return [s["id"] for sec in view["sections"] for s in sec["stories"]]


def edition(page: Page) -> list[str]:
    """The ids of the stories in the edition, in the panel's order."""
    return page.locator("#desk-panel ol.stories li[data-story]:has(button[id^='drop-'])") \
        .evaluate_all("els => els.map(e => e.dataset.story)")


def title(page: Page, sid: str) -> str:
    return page.locator(f"#title-{sid}").inner_text().strip()


def email(page: Page) -> FrameLocator:
    return page.frame_locator("#email")


def open_page(page: Page, preview: Running) -> None:
    from playwright.sync_api import expect

    page.goto(preview.url())
    expect(page.locator("#live")).to_have_attribute("data-state", "connected")
    expect(page.locator("#desk-panel")).to_be_visible()


def test_pin_drop_rewrite_and_undo_from_the_preview(preview: Running, site: Config,
                                                    page: Page) -> None:
    from playwright.sync_api import expect

    open_page(page, preview)
    first = edition(page)
    assert len(first) >= 8, first
    body = email(page).locator("body")
    outside = page.locator("#desk-panel li[data-story]").filter(
        has=page.locator("button", has_text="Pin in")).first
    pinned = outside.get_attribute("data-story")
    assert pinned and pinned not in first
    pinned_title, dropped_title = title(page, pinned), title(page, first[1])
    expect(body).not_to_contain_text(pinned_title)
    expect(body).to_contain_text(dropped_title)

    # Rewrite the third story's headline.
    target = first[2]
    page.locator(f"#more-{target} summary").click()
    page.fill(f"#headline-{target}", "The desk wrote this headline")
    page.click(f"#headline-save-{target}")
    expect(body).to_contain_text("The desk wrote this headline")
    expect(page.locator(f"#edited-{target}")).to_have_text("Edited")

    # Drop the second story.
    page.click(f"#drop-{first[1]}")
    expect(body).not_to_contain_text(dropped_title)
    assert first[1] not in edition(page)

    # Pin a story from outside the edition at place 2.
    page.locator(f"#more-{pinned} summary").click()
    page.fill(f"#at-{pinned}", "2")
    page.click(f"#pin-at-{pinned}")
    expect(body).to_contain_text(pinned_title)
    expect(page.locator(f"#story-{pinned} .place")).to_have_text("2")
    assert edition(page)[1] == pinned

    assert edits(site) == [("headline", target, BY_DEFAULT), ("drop", first[1], BY_DEFAULT),
                           ("pin", pinned, BY_DEFAULT)]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1720, "height": 1100})  # desk, email and checks abreast
    page.screenshot(path=str(ARTIFACTS / "desk.png"), full_page=True)

    # Undo: that story's edits go, the email has its own headline back.
    page.click(f"#undo-{target}")
    expect(body).not_to_contain_text("The desk wrote this headline")
    expect(page.locator(f"#edited-{target}")).to_have_count(0)
    assert [k for k, _, _ in edits(site)] == ["drop", "pin"]


def test_the_keyboard_reaches_and_works_the_controls(preview: Running, site: Config,
                                                     page: Page) -> None:
    from playwright.sync_api import expect

    open_page(page, preview)
    page.fill("#desk-by", "Ada")
    first = edition(page)
    gone = title(page, first[0])
    page.locator("body").focus()
    aim = f"drop-{first[0]}"
    for _ in range(80):  # Tab through the page until the lead's Drop button
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == aim:
            break
    else:
        pytest.fail(f"Tab never reached #{aim}")
    # Focus is visible: the focused control has an outline.
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
    page.keyboard.press("Enter")
    expect(email(page).locator("body")).not_to_contain_text(gone)
    assert edits(site) == [("drop", first[0], "Ada")]
    # After the rebuild the keyboard user is back in the panel, on that story.
    expect(page.locator("#desk-result")).to_contain_text("drop")
    assert page.evaluate("document.activeElement.closest('#desk-panel') !== null")


def test_a_post_without_the_token_is_refused(preview: Running, site: Config) -> None:
    first = first_ids(site)
    body = {"action": "drop", "story": first[0]}
    for headers in ({}, {"X-Preview-Token": "guessed"}):
        r = httpx.post(preview.url("/desk"), json=body, headers=headers, timeout=30)
        assert r.status_code == 403, r.text
    assert edits(site) == []
    r = httpx.post(preview.url("/desk"), json=body, timeout=60,
                   headers={"X-Preview-Token": preview.live.token})
    assert r.status_code == 200 and r.json()["ok"], r.text
    assert edits(site) == [("drop", first[0], BY_DEFAULT)]


def test_edits_after_sending_began_are_refused_like_the_cli(preview: Running, site: Config,
                                                            page: Page) -> None:
    from playwright.sync_api import expect

    sid = first_ids(site)[0]
    store = pipeline.open_store(site)
    try:  # the edition frozen, as `digest send` does first
        roster = pipeline.load_roster(site)
        pipeline.prepare(site, store, now=NOW, subscribers=list(roster.active()))
    finally:
        store.close()
    preview.live.bump()  # not awaited by the poll: this test's preview does not watch
    r = httpx.post(preview.url("/desk"), json={"action": "drop", "story": sid}, timeout=60,
                   headers={"X-Preview-Token": preview.live.token})
    assert r.status_code == 409, r.text
    if shutil.which("faketime") is None:
        pytest.skip("faketime not installed (apt-get install faketime; .ci/run does)")
    cli = subprocess.run(
        ["faketime", NOW.strftime("%Y-%m-%d %H:%M:%S"), sys.executable, "-m", "digest",
         "--config", str(site.path), "desk", "drop", sid],
        capture_output=True, text=True, timeout=120, cwd=site.path.parent,
        env={**os.environ, "TZ": "UTC"})
    assert cli.returncode == 1, cli.stderr
    assert cli.stderr.strip() == f"error: {r.json()['error']}"
    assert edits(site) == []
    # The page says so and offers no control.
    open_page(page, preview)
    expect(page.locator("#desk-frozen")).to_be_visible()
    expect(page.locator("#desk-panel button")).not_to_have_count(0)
    expect(page.locator("#desk-panel button:enabled")).to_have_count(0)


def test_an_edit_rebuilds_the_email_at_once(site: Config) -> None:
    """The POST itself bumps the version (no poll runs here: the app's lifespan is not
    started), so the very next request shows the email as edited."""
    from starlette.testclient import TestClient

    app = create_app(site, desk=ops, clock=lambda: NOW, watch=False)
    live = app.state.live
    client = TestClient(app, base_url="http://127.0.0.1")
    sid = first_ids(site)[0]
    before = live.version
    assert "Rewritten at the desk" not in client.get("/email.html").text
    r = client.post("/desk", json={"action": "headline", "story": sid,
                                   "text": "Rewritten at the desk"},
                    headers={"X-Preview-Token": live.token})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == live.version != before
    assert "Rewritten at the desk" in client.get("/email.html").text
    assert 'id="edited-' + sid + '"' in client.get("/").text
    live.close()


def test_an_edit_made_with_digest_desk_reaches_the_open_page(preview: Running, site: Config,
                                                             page: Page) -> None:
    """The desk's rows are part of the preview's fingerprint: an edit from another
    terminal rebuilds an open page too (at the next poll)."""
    from playwright.sync_api import expect

    open_page(page, preview)
    sid = edition(page)[0]
    ops.edit(site, ops.day_for(site, NOW, None, ""), "headline", sid,
             text="Rewritten in a terminal", by="ed")
    expect(email(page).locator("body")).to_contain_text("Rewritten in a terminal")
    expect(page.locator(f"#edited-{sid}")).to_be_visible()


def test_every_action_the_panel_posts_is_the_desks(site: Config) -> None:
    """lead, move, blurb, note, approve through /desk land in the store as `digest desk`
    would record them; an unknown story is 404, a malformed request 400."""
    from starlette.testclient import TestClient

    app = create_app(site, desk=ops, clock=lambda: NOW, watch=False)
    live = app.state.live
    client = TestClient(app, base_url="http://127.0.0.1")
    ids = first_ids(site)

    def post(status: int, **body: object) -> dict:  # type: ignore[type-arg]
        r = client.post("/desk", json=body, headers={"X-Preview-Token": live.token})
        assert r.status_code == status, r.text
        return r.json()  # type: ignore[no-any-return]

    post(200, action="lead", story=ids[3], by="  Ada   Lovelace ")
    post(200, action="move", story=ids[4], text="science")
    post(200, action="blurb", story=ids[5], text="Our own two sentences.")
    post(200, action="note", text="Good *morning*.")
    several = next(s for s in ops.show(site, ops.day_for(site, NOW, None, "")).as_json()[
        "sections"][0]["stories"] if len(s["articles"]) > 1)
    cut = several["articles"][-1]
    assert f'id="cut-{several["id"]}-1"' in client.get("/").text  # the panel offers it
    post(200, action="drop", story=several["id"], url=cut)
    post(200, action="approve")
    assert post(404, action="drop", story="zzzzzz")["error"].startswith("no story 'zzzzzz'")
    post(400, action="explode", story=ids[0])
    post(400, action="pin", story=ids[0], position="first")
    post(400, action="move", story=ids[0], text="No such section")
    view = ops.show(site, ops.day_for(site, NOW, None, "")).as_json()
    edition = [s for sec in view["sections"] for s in sec["stories"]]
    assert edition[0]["id"] == ids[3]
    science = next(sec for sec in view["sections"] if sec["title"] == "Science")
    assert ids[4] in [s["id"] for s in science["stories"]]
    assert next(s for s in edition if s["id"] == ids[5])["summary"] == "Our own two sentences."
    assert view["note"] == "Good *morning*."
    assert any(e["kind"] == "drop_article" and e["anchor"] == cut for e in view["edits"])
    assert cut not in [u for s in edition for u in s["articles"]]
    assert view["approved"]["by"] == "preview"
    assert (view["edits"][0]["kind"], view["edits"][0]["by"]) == ("lead", "Ada Lovelace")
    page = client.get("/").text
    assert 'id="desk-approved"' in page and "<em>morning</em>" in client.get("/email.html").text
    live.close()
