"""The checks beside the preview, on real copies from the demo install and on HTML
made to fail each check."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from digest import config as configuration
from digest import pipeline
from digest.config import Config
from digest.mail.message import message_bytes, personal_for
from digest.models import Section, Selection
from digest.render.variant import PLACEHOLDERS, sample_selection
from digest.web import checks
from tests.preview_site import make_site

# The clock every copy here is made at: late on the 27th in UTC, already the 28th in
# Berlin (the newsletter's zone), so a UTC date where the app's day belongs shows.
NOW = datetime(2026, 11, 27, 23, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, pipeline.Copy]:
    config = configuration.load(make_site(tmp_path_factory.mktemp("site")))
    store = pipeline.open_store(config)
    try:
        pipeline.collect(config, store, now=NOW)
        copy = pipeline.copy_for(config, store, now=NOW)
    finally:
        store.close()
    assert copy is not None
    assert "28 November 2026" in copy.html  # Berlin's day at NOW, not UTC's 27th
    return config, copy


def with_html(config: Config, copy: pipeline.Copy, html: str) -> pipeline.Copy:
    """The same copy with other HTML, its MIME message rebuilt as a send would."""
    rendered = replace(copy.rendered, html=html)
    day = pipeline.today(config, NOW)
    personal = personal_for(config, "secret", copy.subscriber, day)
    eml = message_bytes(config, rendered, copy.subscriber, personal, day=day, now=NOW)
    return replace(copy, rendered=rendered, html=html, eml=eml)


def test_demo_copy_passes_the_hard_checks(demo: tuple[Config, pipeline.Copy]) -> None:
    config, copy = demo
    report = checks.run(copy, config, selection=None)
    keys = [c.key for c in report.checks]
    assert keys == ["size", "subject", "preheader", "alt", "images", "sections", "links", "dark"]
    assert report.get("size").level == "ok"
    assert report.get("alt").level == "ok"
    assert report.get("links").level == "ok", report.get("links").items
    assert report.get("sections").level == "info"  # unknown without a selection
    assert report.images and all(i.src.startswith("https://") for i in report.images)
    assert any(ln.href.startswith(config.newsletter.base_url + "/unsubscribe/")
               for ln in report.links)


def test_size_against_gmail_clip(demo: tuple[Config, pipeline.Copy]) -> None:
    config, copy = demo
    size = checks.html_part_size(copy.message, copy.html)
    assert size >= len(copy.html.encode())  # quoted-printable only grows it
    big = with_html(config, copy, copy.html.replace(
        "</body>", "<p>" + "Lorem ipsum dolor sit amet. " * 4000 + "</p></body>"))
    check = checks.check_size(big)
    assert check.level == "error" and "Gmail will clip it" in check.detail


def test_images_alt_and_urls() -> None:
    found = checks.scan(
        '<a href="https://x.example/a"><img src="https://x.example/a.png" alt="Chart"></a>'
        '<img src="https://x.example/pixel.gif" alt="">'
        '<img src="http://x.example/b.png">'
        '<img src="images/c.png" alt="Local">')
    alt = checks.check_alt(found.images)
    assert alt.level == "warn" and alt.items == ("http://x.example/b.png",)
    assert "1 marked decorative" in alt.detail
    urls = checks.check_image_urls(found.images)
    assert urls.level == "error" and urls.items == ("images/c.png",)
    plain = checks.check_image_urls(found.images[:3])
    assert plain.level == "warn" and plain.items == ("http://x.example/b.png",)
    assert checks.collect_links(found.links)[0].text == "Chart"  # named by its alt


def test_subject_and_preheader_lengths() -> None:
    assert checks.check_subject("Short and clear").level == "ok"
    long = checks.check_subject("x" * 95)
    assert long.level == "warn" and "95 characters" in long.title
    assert checks.check_subject("  ").level == "error"
    texts = ["A preheader that is shown"]
    assert checks.check_preheader("A preheader that is shown", texts).level == "ok"
    missing = checks.check_preheader("Not in the email", texts)
    assert missing.level == "warn" and "mj-preview" in missing.detail
    long_text = "word " * 40
    assert "too long" in checks.check_preheader(long_text.strip(), [long_text]).title
    assert checks.check_preheader("", texts).title == "No preheader"


def test_empty_sections_are_named(demo: tuple[Config, pipeline.Copy]) -> None:
    config, _ = demo
    sample = sample_selection(pipeline.today(config, NOW))
    lead = sample.sections[0].stories[0]
    selection = Selection(day=sample.day, sections=(
        Section("Top stories", sample.sections[0].stories),
        Section("Science", (lead,), topic="science"),  # only the lead: no heading of its own
    ))
    check = checks.check_sections(config, "all", selection)
    assert check.level == "warn"
    assert "World: no stories today (left out)" in check.items
    assert "Science: only the lead story, shown above it (no heading)" in check.items
    assert checks.planned_sections(config, "science")[-1] == "Science"
    assert "World" not in checks.planned_sections(config, "science")


def test_link_problems(demo: tuple[Config, pipeline.Copy]) -> None:
    config, copy = demo
    html = copy.html.replace("</body>", '<a href="javascript:alert(1)">x</a><a href="">y</a>'
                             f'<a href="{PLACEHOLDERS["view_url"]}">v</a></body>')
    bad = with_html(config, copy, html)
    found = checks.scan(bad.html)
    check = checks.check_links(checks.collect_links(found.links), config, bad)
    assert check.level == "error"  # an unfilled personal field
    assert any("javascript:alert(1)" in i for i in check.items)
    assert any(i.startswith("empty link") for i in check.items)
    assert any("personal field left unfilled" in i for i in check.items)

    no_unsub = with_html(config, copy, copy.html.replace("/unsubscribe/", "/gone/"))
    found = checks.scan(no_unsub.html)
    check = checks.check_links(checks.collect_links(found.links), config, no_unsub)
    assert check.level == "warn" and any("no unsubscribe link" in i for i in check.items)


def test_dark_styles() -> None:
    assert checks.check_dark("@media (prefers-color-scheme: dark) {}").level == "ok"
    assert checks.check_dark("<p>plain</p>").level == "info"
