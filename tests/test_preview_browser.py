"""The preview in a real headless Chromium (Debian's, driven by Playwright): what a
person sees and clicks. Screenshots go to tests/artifacts/ (git-ignored)."""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trustme

from digest import config as configuration
from digest import pipeline
from digest.config import Config
from digest.store.facade import Store
from tests.peers import FeedServer, SmtpServer
from tests.preview_site import ARTIFACTS, MASTHEAD, Running, make_site, story_urls, today

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
# Headless in a container: no sandbox (no user namespaces), no GPU, /dev/shm is
# small, and nothing should phone home during a test.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run",
]  # fmt: skip
WAIT = 15_000  # ms: generous for a shared 2-core machine; expect() returns at once when met
# The smallest valid PNG (1x1, transparent).
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082")


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"preview-{name}.png"))


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    # The images come from a loopback https server with a test CA the browser does not
    # know (an email shows only https images); what is checked is whether they load.
    context = browser.new_context(viewport={"width": 1280, "height": 1000},
                                  ignore_https_errors=True)
    page = context.new_page()
    page.set_default_timeout(WAIT)
    yield page
    context.close()


@pytest.fixture(scope="module")
def images(ca: trustme.CA) -> Iterator[FeedServer]:
    """Serves every *.png as an image over https; everything else is a 404."""
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(tls)
    with FeedServer(tls=tls) as server:
        def png(handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
            return 200, {"Content-Type": "image/png"}, PNG

        server.routes.update({f"/img/{i}.png": png for i in range(40)})
        yield server


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, images: FeedServer,
         smtp: SmtpServer) -> Config:
    """The demo install, its feed images moved to a local server: every other one
    (.png) loads, the rest (.jpg) are missing."""
    path = make_site(tmp_path_factory.mktemp("site"), smtp_port=smtp.port)
    count = 0

    def local(m: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return images.url(f"img/{count}.{m.group(1)}")

    for feed in (path.parent / "feeds").iterdir():
        text = feed.read_text("utf-8")
        feed.write_text(re.sub(r"https://img\.[^\"'<\s]+\.(png|jpg)", local, text), "utf-8")
    assert count, "the demo feeds carry no images any more"
    return configuration.load(path)


@pytest.fixture(scope="module")
def preview(site: Config) -> Iterator[Running]:
    with Running(site) as running:
        yield running


# -- looking at the email ----------------------------------------------------------------

def test_page_shows_email_widths_dark_text_and_raw(preview: Running, site: Config,
                                                   page: Page) -> None:
    from playwright.sync_api import expect

    response = page.goto(preview.url())
    assert response is not None and response.status == 200
    expect(page.locator("header h1")).to_contain_text(MASTHEAD)
    expect(page.locator("#subject")).not_to_be_empty()
    expect(page.locator("#live")).to_have_attribute("data-state", "connected")

    frame = page.frame_locator("#email")
    expect(frame.locator("h1").first).to_contain_text(MASTHEAD)
    iframe = page.locator("#email")
    box = iframe.bounding_box()
    assert box is not None and round(box["width"]) == 700
    shot(page, "desktop")

    page.click("#width-mobile")
    expect(page.locator("#width-mobile")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#width-desktop")).to_have_attribute("aria-pressed", "false")
    box = iframe.bounding_box()
    assert box is not None and round(box["width"]) == 375
    expect(frame.locator("h1").first).to_be_visible()
    assert "width=mobile" in page.url  # a reload (live or by hand) keeps the view
    shot(page, "mobile")

    def masthead_colour() -> str:
        return str(frame.locator("h1").first.evaluate("e => getComputedStyle(e).color"))

    light = masthead_colour()
    page.click("#dark")
    expect(page.locator("#dark")).to_have_attribute("aria-pressed", "true")
    expect(iframe).to_have_attribute("src", re.compile(r"dark=1"))
    expect(page.locator("html")).to_have_class(re.compile(r"\bdark\b"))
    expect(frame.locator("h1").first).not_to_have_css("color", light)
    shot(page, "dark")
    page.click("#dark")
    expect(frame.locator("h1").first).to_have_css("color", light)

    text = page.locator("#text")
    expect(text).to_be_hidden()
    page.click("#tab-text")
    expect(text).to_be_visible()
    expect(iframe).to_be_hidden()
    shown = text.inner_text()
    assert any(url in shown for url in story_urls(site)), shown[:500]
    assert MASTHEAD.upper() in shown
    shot(page, "text")

    page.click("#tab-raw")
    raw = page.locator("#raw")
    expect(raw).to_be_visible()
    expect(text).to_be_hidden()
    expect(raw.locator("th").get_by_text("List-Unsubscribe", exact=True)).to_have_count(1)
    expect(page.locator("#source")).to_contain_text("Content-Type: multipart/alternative")
    shot(page, "raw")

    page.click("#tab-html")
    expect(iframe).to_be_visible()
    expect(raw).to_be_hidden()


def test_checks_beside_the_email(preview: Running, page: Page) -> None:
    from playwright.sync_api import expect

    page.goto(preview.url())
    expect(page.locator("#check-size")).to_contain_text("of Gmail's 102 KB clip")
    expect(page.locator("#check-size")).to_have_attribute("data-level", "ok")
    for key in ("subject", "preheader", "alt", "sections", "links"):
        expect(page.locator(f"#check-{key}")).to_be_visible()
    expect(page.locator("#links summary")).to_contain_text("Links (")

    # The browser fetches each image: the local .png ones load, the .jpg ones are missing.
    items = page.locator("#image-list li")
    assert items.count() > 0
    check = page.locator("#check-images")
    expect(check).to_have_attribute("data-loaded", "done")
    failed = 0
    for i in range(items.count()):
        src = items.nth(i).get_attribute("data-src") or ""
        expect(items.nth(i)).to_have_attribute(
            "data-load", "loaded" if src.endswith(".png") else "failed")
        failed += not src.endswith(".png")
    if failed:
        expect(check.locator(".title")).to_have_text(
            f"{failed} of {items.count()} images failed to load")
        expect(check).to_have_attribute("data-level", "warn")
    shot(page, "checks")


def test_subscriber_picker_shows_their_copy(preview: Running, page: Page) -> None:
    from playwright.sync_api import expect

    page.goto(preview.url())
    options = page.locator("#subscriber option")
    values = [options.nth(i).get_attribute("value") for i in range(options.count())]
    # Active only: paused and unsubscribed people get no digest, so no preview entry.
    assert "ada@example.org" in values and "grace@example.com" in values
    assert values[0] == "ada@example.org"

    page.select_option("#subscriber", "grace@example.com")
    page.wait_for_url(re.compile(r"subscriber=grace%40example\.com"))
    expect(page.locator("#subscriber")).to_have_value("grace@example.com")
    expect(page.locator("#to")).to_contain_text("grace@example.com")
    expect(page.locator("#email")).to_have_attribute(
        "src", re.compile(r"/email\.html\?subscriber=grace@example\.com"))
    expect(page.frame_locator("#email").get_by_text("Grace Hopper").first).to_be_visible()


def test_day_picker_shows_a_stored_digest(preview: Running, site: Config, page: Page) -> None:
    from playwright.sync_api import expect

    earlier = today(site) - timedelta(days=3)
    store = Store.open(site.db_path)
    try:
        copy = pipeline.copy_for(site, store, now=pipeline.utcnow())
        assert copy is not None
        stored = replace(copy.rendered, variant="all", subject="An Earlier Edition")
        store.save_digest(earlier, [stored], [])
    finally:
        store.close()

    page.goto(preview.url())
    option = page.locator(f'#day option[value="{earlier.isoformat()}"]')
    expect(option).to_have_count(1)  # the store is polled: no restart needed
    page.select_option("#day", earlier.isoformat())
    page.wait_for_url(re.compile(rf"day={earlier.isoformat()}"))
    expect(page.locator("#subject")).to_have_text("An Earlier Edition")
    expect(page.locator("#frozen")).to_be_visible()
    expect(page.locator("#email")).to_have_attribute("src", re.compile(rf"day={earlier}"))
    expect(page.frame_locator("#email").locator("h1").first).to_contain_text(MASTHEAD)


def test_send_a_test_from_the_page(preview: Running, site: Config, smtp: SmtpServer,
                                   page: Page) -> None:
    from playwright.sync_api import expect

    before = len(smtp.received)
    page.goto(preview.url("/?subscriber=grace%40example.com"))
    page.fill("#test-to", "tester@example.org")
    page.click("#send-test")
    result = page.locator("#test-result")
    expect(result).to_have_class("sent")
    expect(result).to_contain_text("tester@example.org")
    shot(page, "test-sent")

    assert len(smtp.received) == before + 1
    got = smtp.received[-1]
    assert got.rcpt_tos == ["tester@example.org"]
    assert str(got.message["Subject"]).startswith("[TEST] ")
    assert "Grace Hopper" in got.message.get_body(("plain",)).get_content()
    store = Store.open(site.db_path)
    try:
        assert store.deliveries(today(site)) == []  # the journal never saw it
    finally:
        store.close()


# -- live edits ---------------------------------------------------------------------------------

def test_editing_files_reloads_the_page_and_errors_recover(tmp_path: Path, page: Page) -> None:
    from playwright.sync_api import expect

    config = configuration.load(make_site(tmp_path / "site"))  # a copy: never the repo's
    template = config.templates_dir / "daily.mjml.j2"
    good = template.read_text("utf-8")
    with Running(config) as running:
        page.goto(running.url("/?width=mobile"))
        frame = page.frame_locator("#email")
        expect(frame.locator("h1").first).to_contain_text(MASTHEAD)
        expect(page.locator("#live")).to_have_attribute("data-state", "connected")

        template.write_text(good.replace("{{ newsletter.name }}", "Freshly Edited"), "utf-8")
        expect(frame.locator("h1").first).to_contain_text("Freshly Edited")
        expect(page.locator("#width-mobile")).to_have_attribute("aria-pressed", "true")

        template.write_text(good.replace("{% block masthead %}", "{% block masthead %}{% if %}"),
                            "utf-8")
        error = page.locator("#error")
        expect(error).to_be_visible()
        expect(error).to_contain_text("Template error")
        expect(error.locator(".where")).to_contain_text(f"{template}:")
        expect(error.locator("li.at")).to_contain_text("{% if %}")
        expect(page.locator("#email")).to_have_count(0)
        shot(page, "template-error")

        template.write_text(good, "utf-8")
        expect(page.locator("#error")).to_have_count(0)
        expect(frame.locator("h1").first).to_contain_text(MASTHEAD)

        text = config.path.read_text("utf-8")
        config.path.write_text(text.replace('name = "The Daily Selection"',
                                            'name = "The Evening Selection"', 1), "utf-8")
        expect(page.locator("header h1")).to_contain_text("The Evening Selection")
        expect(frame.locator("h1").first).to_contain_text("The Evening Selection")
        shot(page, "live-edited")
