"""The email in a real browser (Debian's chromium through Playwright).

No horizontal scrolling at 375 px, the card layout at 375 and 600 px, and every
visible piece of text readable (WCAG AA 4.5:1) in light and dark mode.
Screenshots land in tests/artifacts/ (git-ignored) for a human to look at.

The page never touches the network: every request is answered from the test
(images with a generated PNG) or aborted.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest

from digest import config as config_mod
from digest.config import Config
from digest.render.theme import contrast
from digest.render.variant import personalise, render_variant
from tests.test_render import NOW, personal, selection

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Route

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason=f"{CHROMIUM} not installed (apt-get install chromium)"),
]


def png(width: int, height: int, rgb: tuple[int, int, int] = (120, 140, 160)) -> bytes:
    """A solid-colour PNG, made here so no image file or library is needed."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    row = b"\x00" + bytes(rgb) * width
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * height)) + chunk(b"IEND", b""))


IMAGE = png(640, 360)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                      args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def email_html() -> str:
    cfg = config_mod.load(REPO / "config.toml")
    html, _ = personalise(render_variant(selection(12), cfg, variant="all", now=NOW),
                          personal())
    return html


def _offline(route: Route) -> None:
    if route.request.resource_type == "image":
        route.fulfill(status=200, content_type="image/png", body=IMAGE)
    else:
        route.abort()


def open_email(browser: Browser, html: str, width: int,
               scheme: Literal["light", "dark"] = "light") -> Page:
    page = browser.new_page(viewport={"width": width, "height": 900}, color_scheme=scheme)
    page.route("**/*", _offline)
    page.set_content(html, wait_until="load")
    return page


def test_no_horizontal_scroll_at_375(browser: Browser, email_html: str) -> None:
    page = open_email(browser, email_html, 375)
    try:
        scroll, inner = page.evaluate(
            "[document.documentElement.scrollWidth, window.innerWidth]")
        assert scroll <= inner, f"page is {scroll}px wide in a {inner}px viewport"
        widest = page.evaluate("""Math.max(...[...document.querySelectorAll('body *')]
            .map(e => e.getBoundingClientRect().right))""")
        assert widest <= 375.5
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "email-375.png"), full_page=True)
    finally:
        page.close()


def _first_card_boxes(page: Page) -> tuple[dict[str, float], dict[str, float]]:
    """Bounding boxes of the first thumbnail card's image and its headline."""
    boxes: Any = page.evaluate("""() => {
        const img = document.querySelector('.ds-thumb img');
        const card = img.closest('.ds-card');
        const title = card.querySelector('h3');
        const box = e => { const r = e.getBoundingClientRect();
                           return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; };
        return [box(img), box(title)];
    }""")
    return boxes[0], boxes[1]


def test_cards_stack_under_480_and_sit_side_by_side_at_600(browser: Browser,
                                                           email_html: str) -> None:
    narrow = open_email(browser, email_html, 375)
    wide = open_email(browser, email_html, 600)
    try:
        img, title = _first_card_boxes(narrow)
        assert img["bottom"] <= title["top"] + 1, "thumbnail should sit above the headline"
        img, title = _first_card_boxes(wide)
        assert img["right"] <= title["left"] + 1, "thumbnail should sit beside the headline"
        assert wide.evaluate("document.documentElement.scrollWidth") <= 600
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        wide.screenshot(path=str(ARTIFACTS / "email-600.png"), full_page=True)
    finally:
        narrow.close()
        wide.close()


# Every visible element with text of its own: its colour and the first opaque
# background behind it (bgcolor attributes show up as background-color).
_TEXT_COLOURS = """() => {
  const opaque = c => c && c !== 'transparent' && !/rgba\\(.*,\\s*0\\)$/.test(c);
  const out = [];
  for (const el of document.body.querySelectorAll('*')) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own || !el.checkVisibility({opacityProperty: true, visibilityProperty: true})) continue;
    const r = el.getBoundingClientRect();
    if (r.width < 2 || r.height < 2) continue;
    let bg = null;
    for (let p = el; p && !bg; p = p.parentElement) {
      const c = getComputedStyle(p).backgroundColor;
      if (opaque(c)) bg = c;
    }
    out.push([el.tagName, el.textContent.trim().slice(0, 40), getComputedStyle(el).color,
              bg || 'rgb(255, 255, 255)']);
  }
  return out;
}"""


def _hex(css: str) -> str:
    parts = css[css.index("(") + 1:css.index(")")].split(",")
    return "#" + "".join(f"{round(float(p)):02x}" for p in parts[:3])


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_text_has_aa_contrast(browser: Browser, email_html: str,
                                   scheme: Literal["light", "dark"]) -> None:
    page = open_email(browser, email_html, 600, scheme)
    try:
        found = page.evaluate(_TEXT_COLOURS)
        assert len(found) > 30
        bad = [(tag, text, fg, bg, round(contrast(_hex(fg), _hex(bg)), 2))
               for tag, text, fg, bg in found if contrast(_hex(fg), _hex(bg)) < 4.5]
        assert not bad, bad
        if scheme == "dark":
            card = page.evaluate(
                "getComputedStyle(document.querySelector('.ds-card td')).backgroundColor")
            assert _hex(card) == "#1e1e1e"  # the dark styles really apply
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "email-600-dark.png"), full_page=True)
    finally:
        page.close()


def test_a_pale_brand_colour_is_darkened_for_text(browser: Browser) -> None:
    cfg: Config = config_mod.load(REPO / "config.toml").with_overrides(
        theme={"brand_color": "#ffd400"})
    html, _ = personalise(render_variant(selection(4), cfg, variant="x", now=NOW), personal())
    page = open_email(browser, html, 600)
    try:
        found = page.evaluate(_TEXT_COLOURS)
        assert all(contrast(_hex(fg), _hex(bg)) >= 4.5 for _, _, fg, bg in found)
        assert "#ffd400" in html  # still the masthead rule
    finally:
        page.close()
