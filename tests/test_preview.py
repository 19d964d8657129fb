"""The browser preview, end to end: the real app under uvicorn on 127.0.0.1, a real
headless Chromium driving it, and a real SQLite file filled from the bundled feeds."""

from __future__ import annotations

import email
import email.policy
import logging
import shutil
import socket
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import uvicorn
from click.testing import CliRunner

from digest import config as configuration
from digest.cli import cli
from digest.config import Config
from digest.errors import DigestError
from digest.preview import create_app, fingerprint, serve
from digest.store import Store
from tests.peers import free_port

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

REPO = Path(__file__).parents[1]
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
# Headless in a container: no sandbox (no user namespaces), no GPU, /dev/shm is
# small, and nothing should phone home during a test.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run",
]  # fmt: skip
MASTHEAD = "The Daily Selection"

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed (apt-get install chromium)")


# -- helpers ------------------------------------------------------------------

def make_site(root: Path) -> Path:
    """A private copy of the demo install; its database lands under root/var/."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("feeds", "templates", "subscribers"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / "config.toml", root / "config.toml")
    return root / "config.toml"


class Running:
    """create_app(config) under uvicorn in a thread, on a free loopback port."""

    def __init__(self, config: Config) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(
            create_app(config), host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> Running:
        self.thread.start()
        deadline = time.monotonic() + 30  # startup collects the demo feeds first
        while True:
            if self.server.started:
                try:
                    httpx.get(self.url("/changes"), timeout=5).raise_for_status()
                    return self
                except httpx.TransportError:
                    pass
            if not self.thread.is_alive():
                raise RuntimeError("preview server exited during startup")
            if time.monotonic() > deadline:
                raise TimeoutError("preview server did not answer within 30 s")
            time.sleep(0.02)

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Config:
    return configuration.load(make_site(tmp_path_factory.mktemp("site")))


@pytest.fixture(scope="module")
def preview(site: Config) -> Iterator[Running]:
    with Running(site) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                      args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    yield page
    page.close()


def story_urls(config: Config) -> set[str]:
    store = Store.open(config.db_path)
    try:
        return {a.url for a in store.articles_since(None)}
    finally:
        store.close()


# -- the page in a browser ------------------------------------------------------

@pytest.mark.browser
@needs_chromium
def test_page_shows_email_widths_and_text(preview: Running, site: Config, page: Page) -> None:
    from playwright.sync_api import expect

    response = page.goto(preview.url())
    assert response is not None and response.status == 200
    expect(page.locator("header h1")).to_contain_text(MASTHEAD)
    expect(page.locator("#subject")).not_to_have_text("—")
    expect(page.locator("#size")).to_contain_text("102 KB")

    frame = page.frame_locator("#email")
    expect(frame.get_by_text(MASTHEAD).first).to_be_visible()
    iframe = page.locator("#email")
    box = iframe.bounding_box()
    assert box is not None and round(box["width"]) == 600
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "preview-desktop.png"))

    page.click("#width-mobile")
    expect(page.locator("#width-mobile")).to_have_attribute("aria-pressed", "true")
    box = iframe.bounding_box()
    assert box is not None and round(box["width"]) == 375
    expect(frame.get_by_text(MASTHEAD).first).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "preview-mobile.png"))

    text = page.locator("#text")
    expect(text).to_be_hidden()
    page.click("#tab-text")
    expect(text).to_be_visible()
    expect(iframe).to_be_hidden()
    shown = text.inner_text()
    assert any(url in shown for url in story_urls(site)), shown[:500]

    page.click("#tab-html")
    expect(iframe).to_be_visible()
    expect(text).to_be_hidden()


@pytest.mark.browser
@needs_chromium
def test_choosing_a_subscriber_reloads_their_copy(preview: Running, page: Page) -> None:
    from playwright.sync_api import expect

    page.goto(preview.url())
    options = page.locator("#subscriber option")
    values = [options.nth(i).get_attribute("value") for i in range(options.count())]
    # Active only: paused and unsubscribed people get no digest, so no preview entry.
    assert values == ["ada@example.org", "grace@example.com", "kenji@example.net"]

    page.select_option("#subscriber", "grace@example.com")
    page.wait_for_url("**/?subscriber=grace%40example.com")
    expect(page.locator("#subscriber")).to_have_value("grace@example.com")
    expect(page.locator("#email")).to_have_attribute(
        "src", "/email.html?subscriber=grace@example.com")
    expect(page.frame_locator("#email").get_by_text("Grace Hopper").first).to_be_visible()


# -- the raw parts --------------------------------------------------------------

def test_email_parts(preview: Running) -> None:
    eml = httpx.get(preview.url("/email.eml"), params={"subscriber": "ada@example.org"})
    assert eml.status_code == 200
    assert eml.headers["content-type"].startswith("message/rfc822")
    message = email.message_from_bytes(eml.content, policy=email.policy.default)
    assert message.get_content_type() == "multipart/alternative"
    assert "ada@example.org" in str(message["To"])
    kinds = [p.get_content_type() for p in message.iter_parts()]
    assert kinds == ["text/plain", "text/html"]

    page = httpx.get(preview.url("/email.html"), params={"subscriber": "ada@example.org"})
    assert page.status_code == 200 and MASTHEAD in page.text
    assert "script-src 'none'" in page.headers["content-security-policy"]
    text = httpx.get(preview.url("/email.txt"), params={"subscriber": "ada@example.org"})
    assert text.headers["content-type"].startswith("text/plain")
    assert "Ada Lovelace" in text.text  # personalised, not the placeholder token


def test_bad_subscriber_parameter_is_a_400(preview: Running) -> None:
    r = httpx.get(preview.url("/"), params={"subscriber": "not an address"})
    assert r.status_code == 400
    assert 'id="error"' in r.text and "not a valid email address" in r.text


# -- failures the page must survive ---------------------------------------------------

def test_broken_template_is_one_line_500_and_the_server_lives_on(tmp_path: Path) -> None:
    config = configuration.load(make_site(tmp_path / "site"))
    template = config.templates_dir / "daily.mjml.j2"
    good = template.read_text("utf-8")
    with Running(config) as running:
        template.write_text(good + "\n{% if %}\n", "utf-8")
        r = httpx.get(running.url("/"))
        assert r.status_code == 500
        assert 'id="error"' in r.text and "daily.mjml.j2" in r.text
        assert "Traceback" not in r.text
        part = httpx.get(running.url("/email.html"))
        assert part.status_code == 500 and part.text.startswith("error: ")
        assert "Traceback" not in part.text

        template.write_text(good, "utf-8")
        r = httpx.get(running.url("/"))
        assert r.status_code == 200 and 'id="email"' in r.text


def test_nothing_to_show_says_so(tmp_path: Path) -> None:
    path = make_site(tmp_path / "site")
    data = tomllib.loads(path.read_text("utf-8"))
    data["feeds"] = []  # startup collect finds nothing: an empty day
    config = configuration.from_dict(data, path)
    with Running(config) as running:
        r = httpx.get(running.url("/"))
        assert r.status_code == 200
        assert "No stories for today — run <code>digest collect</code>" in r.text
        assert 'id="email"' not in r.text
        assert httpx.get(running.url("/email.html")).status_code == 404


def test_fingerprint_follows_template_edits(tmp_path: Path) -> None:
    config = configuration.load(make_site(tmp_path / "site"))
    store = Store.open(config.db_path)
    try:
        before = fingerprint(config, store)
        assert fingerprint(config, store) == before
        template = config.templates_dir / "daily.txt.j2"
        template.write_text(template.read_text("utf-8") + "\n", "utf-8")
        assert fingerprint(config, store) != before
    finally:
        store.close()


# -- the CLI path ---------------------------------------------------------------------

@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield int(other.getsockname()[1])


def test_serve_on_a_taken_port_is_a_user_error(tmp_path: Path, taken_port: int) -> None:
    config = configuration.load(make_site(tmp_path / "site"))
    with pytest.raises(DigestError, match="address in use") as caught:
        serve(config, host="127.0.0.1", port=taken_port, open_browser=False)
    assert caught.value.hint == "pass --port"
    assert not config.db_path.exists()  # failed before touching anything


def test_preview_command_on_a_taken_port(tmp_path: Path, taken_port: int) -> None:
    path = make_site(tmp_path / "site")
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        result = CliRunner().invoke(
            cli, ["--config", str(path), "preview", "--port", str(taken_port), "--no-open"])
    finally:
        # The CLI installs its own log handler on the (captured, soon closed) stderr.
        root.handlers[:], root.level = handlers, level
    assert result.exit_code == 1, result.output
    assert (f"error: cannot listen on 127.0.0.1:{taken_port}: address in use (pass --port)"
            in result.output)
