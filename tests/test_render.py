from __future__ import annotations

import html as htmllib
import re
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from mjml import mjml2html

from digest import config as config_mod
from digest.config import Config
from digest.errors import TemplateError
from digest.models import Article, Personal, Rendered, Section, Selection, Story
from digest.render.variant import (
    MJML_TAGS,
    PLACEHOLDERS,
    check_templates,
    format_date,
    personalise,
    render_variant,
)

REPO = Path(__file__).resolve().parent.parent
DAY = date(2026, 11, 27)
NOW = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
NASTY = "Q&A: why <script>alert(1)</script> & friends broke the build"


def article(i: int, source: str = "Harbour Herald", *, title: str | None = None,
            image: str | None = None) -> Article:
    return Article(
        feed_url=f"https://{source.split()[0].lower()}.example/feed.xml",
        source=source,
        guid=f"g{i}",
        url=f"https://news.example.com/{i}?ref=rss&id={i}",
        title=title or f"Harbour authority approves new ferry route number {i}",
        summary="The decision follows months of consultation with residents and "
                "operators, and the first sailings are expected in the spring.",
        published=NOW,
        image=image,
    )


def selection(n: int = 5) -> Selection:
    lead = Story(article(0, title=NASTY, image="https://img.example.com/0.jpg"),
                 (article(100, "Northern Ledger"), article(101, "Civic Wire")))
    rest = [Story(article(i, ["Civic Wire", "Byte Street", "Meridian Science"][i % 3],
                          image=f"https://img.example.com/{i}.jpg" if i % 2 else None))
            for i in range(1, n)]
    half = max(1, len(rest) // 2)
    return Selection(day=DAY, sections=(
        Section("Top stories", (lead, *rest[:half])),
        Section("Science", tuple(rest[half:]), topic="science"),
        Section("Empty topic", (), topic="nothing"),
    ))  # fmt: skip


def urls(sel: Selection) -> list[str]:
    return [a.url for s in sel.stories for a in s.articles]


@pytest.fixture
def cfg() -> Config:
    return config_mod.load(REPO / "config.toml")


@pytest.fixture
def cfg_de(cfg: Config) -> Config:
    return cfg.with_overrides(newsletter={"language": "de"})


def personal(name: str = "Zoë Ångström") -> Personal:
    return Personal(
        email="zoe@example.net",
        name=name,
        unsubscribe_url="https://digest.example.org/unsubscribe/abc.def?x=1&y=2",
        unsubscribe_mailto="unsubscribe@example.org",
        view_url="https://digest.example.org/view/2026-11-27",
    )


@pytest.fixture
def rendered(cfg: Config) -> Rendered:
    return render_variant(selection(), cfg, variant="all", now=NOW)


def templates_with(tmp_path: Path, cfg: Config, mjml: str, text: str = "ok\n") -> Config:
    (tmp_path / "daily.mjml.j2").write_text(mjml, "utf-8")
    (tmp_path / "daily.txt.j2").write_text(text, "utf-8")
    return cfg.with_overrides(paths={"templates": str(tmp_path)})


MINIMAL = """<mjml>
  <mj-body>
    <mj-section><mj-column>
      <mj-text>{{ newsletter.name }}</mj-text>
    </mj-column></mj-section>
  </mj-body>
</mjml>
"""


# --- HTML -----------------------------------------------------------------------


def test_html_has_masthead_date_and_structure(rendered: Rendered) -> None:
    assert "The Daily Selection" in rendered.html
    assert "Friday, 27 November 2026" in rendered.html
    assert '<html lang="en"' in rendered.html
    assert "<title>" in rendered.html and "Science" in rendered.html
    assert "Empty topic" not in rendered.html  # empty sections are never shown
    assert "Daily Selection, 12 Quay Street" in rendered.html  # postal address


def test_headlines_are_escaped(rendered: Rendered) -> None:
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; friends" in rendered.html
    # as alt text of the lead image too
    assert 'alt="Q&amp;A: why &lt;script&gt;' in rendered.html


def test_every_article_url_is_linked(rendered: Rendered) -> None:
    for url in urls(selection()):
        assert f'href="{htmllib.escape(url)}"' in rendered.html, url


def test_lead_story_shows_image_and_other_sources(rendered: Rendered) -> None:
    assert 'src="https://img.example.com/0.jpg"' in rendered.html
    assert "also reported by" in rendered.html
    assert "Northern Ledger" in rendered.html and "Civic Wire" in rendered.html


def test_tokens_present_before_personalise_and_gone_after(rendered: Rendered) -> None:
    for field, token in PLACEHOLDERS.items():
        assert token in rendered.html, field
        assert token in rendered.text, field
    html, text = personalise(rendered, personal())
    for token in PLACEHOLDERS.values():
        assert token not in html and token not in text
    assert "Zoë Ångström" in html and "Zoë Ångström" in text
    assert 'href="https://digest.example.org/unsubscribe/abc.def?x=1&amp;y=2"' in html
    assert "https://digest.example.org/unsubscribe/abc.def?x=1&y=2" in text
    assert "https://digest.example.org/view/2026-11-27" in html


def test_personalise_escapes_html_but_not_text(rendered: Rendered) -> None:
    html, text = personalise(rendered, personal('<Bob & "Co">'))
    assert "&lt;Bob &amp; &quot;Co&quot;&gt;" in html
    assert '<Bob & "Co">' not in html
    assert 'Hello <Bob & "Co">,' in text


def test_feed_text_cannot_smuggle_a_token(cfg: Config) -> None:
    sel = selection()
    token = PLACEHOLDERS["email"]
    nested = token[:8] + token + token[8:]  # removing the inner one must not leave a token
    sneaky = replace(sel.stories[1].lead, title=f"Hi {token} {nested}", summary=nested)
    sections = (Section("Top stories", (sel.stories[0], replace(sel.stories[1], lead=sneaky))),)
    r = render_variant(Selection(day=DAY, sections=sections), cfg, variant="x", now=NOW)
    html, _ = personalise(r, personal())
    assert html.count("zoe@example.net") == 1  # the footer only, not the headline


def test_no_mj_tags_left_and_twelve_stories_fit_gmail(cfg: Config) -> None:
    r = render_variant(selection(12), cfg, variant="all", now=NOW)
    assert "<mj-" not in r.html and "</mj-" not in r.html
    html, _ = personalise(r, personal())
    assert len(html.encode("utf-8")) < 102_000 * 0.85  # headroom for quoted-printable


def test_non_http_links_are_dropped(cfg: Config) -> None:
    evil = replace(article(7), url="javascript:alert(1)", image="data:image/png;base64,xx")
    sel = Selection(day=DAY, sections=(Section("Top stories", (Story(evil),)),))
    r = render_variant(sel, cfg, variant="x", now=NOW)
    assert "javascript:" not in r.html and "data:image" not in r.html


def test_empty_selection_still_renders(cfg: Config) -> None:
    r = render_variant(Selection(day=DAY, sections=()), cfg, variant="none", now=NOW)
    assert "No new stories today." in r.html and "No new stories today." in r.text
    assert r.subject == "The Daily Selection — 27 Nov 2026"
    assert r.preheader == ""


# --- subject, preheader, dates ----------------------------------------------------


def test_subject_names_list_date_and_lead_and_is_cut_at_a_word(rendered: Rendered) -> None:
    assert rendered.subject.startswith("The Daily Selection — 27 Nov 2026: Q&A: why <script>")
    long = replace(selection(), sections=(Section("T", (Story(article(1, title="word " * 40)),)),))
    r = render_variant(long, config_mod.load(REPO / "config.toml"), variant="x", now=NOW)
    assert len(r.subject) <= 90
    assert r.subject.endswith("word…")


def test_preheader_joins_top_headlines(rendered: Rendered) -> None:
    assert rendered.preheader.startswith(NASTY + " · ")
    assert rendered.preheader.count(" · ") >= 1
    assert len(rendered.preheader) <= 140


@pytest.mark.parametrize(("day", "lang", "expected"), [
    (date(2026, 11, 27), "en", "Friday, 27 November 2026"),
    (date(2026, 11, 27), "de", "Freitag, 27. November 2026"),
    (date(2026, 3, 1), "de", "Sonntag, 1. März 2026"),
    (date(2026, 3, 1), "en", "Sunday, 1 March 2026"),
])  # fmt: skip
def test_format_date(day: date, lang: str, expected: str) -> None:
    assert format_date(day, lang) == expected


def test_german_edition(cfg_de: Config) -> None:
    r = render_variant(selection(), cfg_de, variant="all", now=NOW)
    assert "Freitag, 27. November 2026" in r.html and "Freitag, 27. November 2026" in r.text
    assert '<html lang="de"' in r.html
    assert "Abbestellen" in r.html and "auch berichtet von" in r.html
    assert r.subject.startswith("The Daily Selection — 27. Nov. 2026: ")
    # Measured as a reader gets it: the story times' tokens are wider than the times.
    assert max(len(line) for line in personalise(r, personal())[1].splitlines()) <= 78
    assert "Hallo Zoë Ångström," in personalise(r, personal())[1]


# --- text part --------------------------------------------------------------------


def test_text_part_is_wrapped_and_has_every_link(rendered: Rendered) -> None:
    lines = rendered.text.splitlines()
    # Measured as a reader gets it: the story times' tokens are wider than the times.
    assert max(len(line) for line in personalise(rendered, personal())[1].splitlines()) <= 78
    for url in urls(selection()):
        assert url in rendered.text, url
    assert PLACEHOLDERS["unsubscribe_url"] in rendered.text
    assert PLACEHOLDERS["view_url"] in rendered.text
    assert "Friday, 27 November 2026" in rendered.text
    assert NASTY in rendered.text  # raw, not HTML-escaped
    assert "-- " in lines  # signature separator survives the whitespace tidy
    assert "EMPTY TOPIC" not in rendered.text


# --- template errors --------------------------------------------------------------


def test_jinja_syntax_error_names_file_and_line(tmp_path: Path, cfg: Config) -> None:
    broken = MINIMAL.replace("{{ newsletter.name }}", "{% if newsletter.name %}oops")
    bad = templates_with(tmp_path, cfg, broken)
    with pytest.raises(TemplateError) as info:
        render_variant(selection(), bad, variant="x", now=NOW)
    msg = str(info.value)
    assert str(tmp_path / "daily.mjml.j2") in msg
    assert re.search(r"daily\.mjml\.j2:\d+", msg)
    assert info.value.hint


def test_undefined_variable_names_file_and_line(tmp_path: Path, cfg: Config) -> None:
    bad = templates_with(tmp_path, cfg, MINIMAL.replace("newsletter.name", "newsleter.name"))
    with pytest.raises(TemplateError) as info:
        render_variant(selection(), bad, variant="x", now=NOW)
    assert f"{tmp_path / 'daily.mjml.j2'}:4" in str(info.value)
    assert "newsleter" in str(info.value)


def test_text_template_error_names_the_text_file(tmp_path: Path, cfg: Config) -> None:
    bad = templates_with(tmp_path, cfg, MINIMAL, text="line one\n{{ nope }}\n")
    with pytest.raises(TemplateError, match=r"daily\.txt\.j2:2"):
        render_variant(selection(), bad, variant="x", now=NOW)


def test_unknown_mj_tag_is_rejected_with_its_line(tmp_path: Path, cfg: Config) -> None:
    bad = templates_with(tmp_path, cfg, MINIMAL.replace("<mj-text>", "<mj-foo>\n<mj-text>"))
    with pytest.raises(TemplateError) as info:
        render_variant(selection(), bad, variant="x", now=NOW)
    assert "mj-foo" in str(info.value)
    assert f"{tmp_path / 'daily.mjml.j2'}:4" in str(info.value)


def test_mjml_compile_error_names_the_file(tmp_path: Path, cfg: Config) -> None:
    bad = templates_with(tmp_path, cfg, "<mjml><mj-body><mj-section></mj-body></mjml>")
    with pytest.raises(TemplateError, match=r"daily\.mjml\.j2: MJML does not compile"):
        render_variant(selection(), bad, variant="x", now=NOW)


def test_missing_template(tmp_path: Path, cfg: Config) -> None:
    bad = cfg.with_overrides(paths={"templates": str(tmp_path), "template": "nope"})
    with pytest.raises(TemplateError, match="template not found"):
        check_templates(bad)


def test_check_templates_accepts_the_shipped_ones(cfg: Config, cfg_de: Config) -> None:
    # Passing means no TemplateError; the test below shows the check can raise.
    check_templates(cfg)
    check_templates(cfg_de)


@pytest.mark.parametrize(("needle", "fault"), [
    ("{% if lead %}", "{% if lead %}{{ nope.x }}"),  # reached only on a day with stories
    ("t.intro if lead else t.empty", "t.intro if lead else nope.x"),  # only on an empty day
])
def test_check_templates_renders_a_full_and_an_empty_day(tmp_path: Path, cfg: Config,
                                                          needle: str, fault: str) -> None:
    for path in (REPO / "templates").glob("*.j2"):
        (tmp_path / path.name).write_text(path.read_text("utf-8"), "utf-8")
    shipped = (tmp_path / "daily.mjml.j2").read_text("utf-8")
    assert needle in shipped, "the shipped template changed: pick another spot to break"
    (tmp_path / "daily.mjml.j2").write_text(shipped.replace(needle, fault), "utf-8")
    with pytest.raises(TemplateError, match="nope"):
        check_templates(cfg.with_overrides(paths={"templates": str(tmp_path)}))


def test_child_template_can_override_a_block(tmp_path: Path, cfg: Config) -> None:
    (tmp_path / "mine.mjml.j2").write_text(
        '{% extends "daily.mjml.j2" %}{% block masthead %}'
        "<mj-section><mj-column><mj-text>MY MASTHEAD</mj-text></mj-column></mj-section>"
        "{% endblock %}", "utf-8")
    (tmp_path / "mine.txt.j2").write_text('{% extends "daily.txt.j2" %}', "utf-8")
    for name in ("daily.mjml.j2", "daily.txt.j2"):
        (tmp_path / name).write_text((REPO / "templates" / name).read_text("utf-8"), "utf-8")
    mine = cfg.with_overrides(paths={"templates": str(tmp_path), "template": "mine"})
    r = render_variant(selection(), mine, variant="x", now=NOW)
    assert "MY MASTHEAD" in r.html and "Friday, 27 November 2026" not in r.html


# --- the MJML tag list ------------------------------------------------------------


def test_shipped_templates_use_only_real_mjml_tags(cfg: Config) -> None:
    used: dict[str, str] = {}
    for path in sorted((REPO / "templates").glob("*.j2")):
        for no, line in enumerate(path.read_text("utf-8").splitlines(), 1):
            for tag in re.findall(r"</?(mj(?:ml|-[a-z0-9-]+))", line):
                used.setdefault(tag, f"{path.name}:{no}")
    assert used, "no MJML tags found in the shipped templates"
    unknown = {tag: where for tag, where in used.items() if tag not in MJML_TAGS}
    assert not unknown, f"tags MJML does not define: {unknown}"
    # and mjml-python really consumes each of them (it copies unknown ones through)
    html = render_variant(selection(), cfg, variant="all", now=NOW).html
    leftovers = [tag for tag in used if f"<{tag}" in html]
    assert not leftovers


def test_mjml_python_copies_unknown_tags_through() -> None:
    # Why render_variant checks tags itself: if this ever fails, mjml-python
    # started validating and the check could go.
    out = mjml2html("<mjml><mj-body><mj-section><mj-column><mj-foo>x</mj-foo>"
                    "</mj-column></mj-section></mj-body></mjml>", disable_comments=True, fonts={})
    assert "<mj-foo>" in out
