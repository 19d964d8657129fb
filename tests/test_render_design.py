"""The email's design contract: golden files, accessibility, theme, languages, Gmail clipping.

Golden files live in tests/data/golden/; after an intended change to the templates
rewrite them with  DIGEST_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_render_design.py
review the diff, and rerun without the variable. A run with it set always fails,
listing what it rewrote: a green run never comes from comparing goldens to themselves
(and .ci/run refuses the variable).
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import shutil
import subprocess
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

from digest import config as config_mod
from digest.config import Config
from digest.errors import ConfigError
from digest.mail import tokens
from digest.mail.message import personal_for, prepare
from digest.models import Section, Selection, Sentence, Story, Subscriber, Summary
from digest.render.qp import encoded_size
from digest.render.theme import contrast, palette
from digest.render.variant import GMAIL_CLIP, html_part_size, personalise, render_variant
from tests.test_render import DAY, NOW, article, personal, selection

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "data" / "golden"
UPDATE = os.environ.get("DIGEST_UPDATE_GOLDEN") == "1"


@pytest.fixture
def cfg() -> Config:
    return config_mod.load(REPO / "config.toml")


def normalise_eml(raw: bytes) -> str:
    text = raw.decode("ascii")
    boundaries = set(re.findall(r'boundary="([^"]+)"', text))
    for i, b in enumerate(sorted(boundaries)):
        text = text.replace(b, f"BOUNDARY-{i}")
    text = re.sub(r"^Date: .*$", "Date: <DATE>", text, flags=re.M)
    return re.sub(r"^Message-ID: .*$", "Message-ID: <MESSAGE-ID>", text, flags=re.M)


class Goldens:
    """Compares output with golden files. With ``update`` it writes them instead and
    ``done()`` fails listing each file as new, changed (lines +/-) or unchanged."""

    def __init__(self, folder: Path, *, update: bool) -> None:
        self.folder = folder
        self.update = update
        self.notes: list[str] = []

    def check(self, name: str, actual: str) -> None:
        path = self.folder / name
        old = path.read_bytes().decode("utf-8") if path.exists() else None
        if self.update or old is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            path.write_bytes(actual.encode("utf-8"))
            self.notes.append(f"{path}: {_change(old, actual)}, written")
        elif actual != old:
            self.notes.append(f"{path}: differs ({_change(old, actual)})")

    def done(self) -> None:
        if not self.notes:
            return
        if self.update:
            why = ("DIGEST_UPDATE_GOLDEN=1 rewrote the goldens, so this run compared nothing "
                   "and fails on purpose; review `git diff tests/data/golden`, then rerun "
                   "without the variable")
        else:
            why = ("output differs from the golden files (a missing one was written); if the "
                   "change is intended, rerun with DIGEST_UPDATE_GOLDEN=1 and review the diff")
        pytest.fail(why + ":\n  " + "\n  ".join(self.notes), pytrace=False)


def _change(old: str | None, new: str) -> str:
    if old is None:
        return "new"
    if old == new:
        return "unchanged"
    diff = list(difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0))
    added = sum(1 for ln in diff if ln.startswith("+") and not ln.startswith("+++"))
    removed = sum(1 for ln in diff if ln.startswith("-") and not ln.startswith("---"))
    return f"changed, +{added} -{removed} lines"


def test_golden_update_always_fails_and_lists_what_changed(tmp_path: Path) -> None:
    (tmp_path / "same.txt").write_text("a\n", "utf-8")
    (tmp_path / "moved.txt").write_text("a\nb\n", "utf-8")
    goldens = Goldens(tmp_path, update=True)
    goldens.check("same.txt", "a\n")
    goldens.check("moved.txt", "a\nc\nd\n")
    goldens.check("fresh.txt", "x\n")
    with pytest.raises(pytest.fail.Exception) as failed:
        goldens.done()
    message = str(failed.value)
    assert "fails on purpose" in message
    assert f"{tmp_path / 'same.txt'}: unchanged, written" in message
    assert f"{tmp_path / 'moved.txt'}: changed, +2 -1 lines, written" in message
    assert f"{tmp_path / 'fresh.txt'}: new, written" in message
    assert (tmp_path / "moved.txt").read_text("utf-8") == "a\nc\nd\n"


def test_golden_compare_fails_on_a_difference_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "g.txt").write_text("a\n", "utf-8")
    goldens = Goldens(tmp_path, update=False)
    goldens.check("g.txt", "a\n")
    goldens.done()  # equal: passes
    goldens.check("g.txt", "b\n")
    with pytest.raises(pytest.fail.Exception, match=r"g\.txt: differs \(changed, \+1 -1"):
        goldens.done()
    assert (tmp_path / "g.txt").read_text("utf-8") == "a\n"


def test_ci_refuses_to_run_with_golden_updates_on(tmp_path: Path) -> None:
    # A PATH with only dirname: should the guard go, the script stops at its next
    # command (apt-get, make) instead of starting the whole suite inside this test.
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "dirname").symlink_to(shutil.which("dirname") or "/usr/bin/dirname")
    proc = subprocess.run(["/bin/bash", str(REPO / ".ci" / "run")], capture_output=True,
                          text=True, timeout=30,
                          env={"PATH": str(tmp_path / "bin"), "DIGEST_UPDATE_GOLDEN": "1"})
    assert proc.returncode != 0
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "DIGEST_UPDATE_GOLDEN" in lines[0], proc.stderr


def summarised(sel: Selection) -> Selection:
    """``sel`` with its second story reported by a second outlet and summarised (the
    block [selection] summaries puts under a card's headline)."""
    story = sel.sections[0].stories[1]
    other = article(200, "Northern Ledger")
    summary = Summary((
        Sentence("The decision follows months of consultation with residents and "
                 "operators, the authority said.", story.lead.source),
        Sentence("Dr. Ana Ruiz of the U.S. operator said the first sailings are expected "
                 "in the spring & summer.", "Northern Ledger"),
    ))
    stories = list(sel.sections[0].stories)
    stories[1] = replace(story, others=(other,), summary=summary)
    return replace(sel, sections=(replace(sel.sections[0], stories=tuple(stories)),
                                  *sel.sections[1:]))


@pytest.mark.parametrize("lang", ["en", "de"])
def test_golden_html_text_and_eml(cfg: Config, lang: str,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # Unsubscribe tokens carry the day they were issued (today, at send time):
    # the golden message is sent on DAY, whatever the date the suite runs on.
    monkeypatch.setattr(tokens, "_today", lambda: DAY)
    cfg = cfg.with_overrides(newsletter={"language": lang})
    rendered = render_variant(summarised(selection(6)), cfg, variant="all", now=NOW)
    html, text = personalise(rendered, personal())
    goldens = Goldens(GOLDEN, update=UPDATE)
    goldens.check(f"daily.{lang}.html", html)
    goldens.check(f"daily.{lang}.txt", text)
    sub = Subscriber(email="zoe@example.net", name="Zoë Ångström")
    raw = prepare(cfg, rendered, day=DAY, fmt="html").bytes_for(
        sub, personal_for(cfg, "golden-secret", sub, DAY), now=NOW)
    goldens.check(f"daily.{lang}.eml", normalise_eml(raw).replace("\r\n", "\n"))
    goldens.done()


# --- accessibility ------------------------------------------------------------------


class _Audit(HTMLParser):
    """Collects images, links (with their text) and the html element's attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.html_attrs: dict[str, str | None] = {}
        self.images: list[dict[str, str | None]] = []
        self.links: list[list[str]] = []  # [href, text...]
        self._open: list[list[str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.html_attrs = a
        elif tag == "img":
            self.images.append(a)
            if self._open:
                self._open[-1].append(f"[img alt={a.get('alt') or ''}]")
        elif tag == "a":
            self._open.append([a.get("href") or ""])

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open:
            self.links.append(self._open.pop())

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1].append(data)


def audit(html: str) -> _Audit:
    a = _Audit()
    a.feed(html)
    return a


def test_lang_alt_text_and_meaningful_links(cfg: Config) -> None:
    sel = selection(8)
    lead = replace(sel.stories[1].lead, image="https://i.example/x.png")
    no_alt = replace(sel.stories[1], lead=lead)
    sel = Selection(day=DAY, sections=((replace(sel.sections[0], stories=(
        sel.stories[0], no_alt, *sel.sections[0].stories[2:]))), *sel.sections[1:]))
    html, _ = personalise(render_variant(sel, cfg, variant="all", now=NOW), personal())
    a = audit(html)
    assert a.html_attrs.get("lang") == "en"
    assert a.images and all((img.get("alt") or "").strip() for img in a.images)
    # a feed gives no alt text: the headline stands in for it
    assert any(img.get("alt") == no_alt.lead.title for img in a.images)
    vague = {"here", "click here", "read more", "more", "link", "this"}
    for href, *parts in a.links:
        text = " ".join(" ".join(parts).split())
        assert text, f"link without text: {href}"
        assert text.lower().strip(" →.") not in vague, (href, text)
    assert any("Read the full story at Harbour Herald" in " ".join(p) for _, *p in a.links)
    assert re.search(r'<meta name="color-scheme" content="light dark" ?/?>', html)
    assert "prefers-color-scheme: dark" in html


def test_palette_meets_aa_in_both_modes(cfg: Config) -> None:
    for mode, colours in palette(cfg.model.theme).items():
        for fg in ("ink", "muted", "link", "brand_text"):
            assert contrast(colours[fg], colours["card"]) >= 4.5, (mode, fg)
        assert contrast(colours["footer"], colours["page"]) >= 4.5, mode
        assert contrast(colours["muted"], colours["page"]) >= 4.5, mode


def test_footer_has_why_postal_manage_unsubscribe_and_view(cfg: Config) -> None:
    html, text = personalise(render_variant(selection(3), cfg, variant="all", now=NOW),
                             personal())
    p = personal()
    for part in (html, text):
        assert "You receive this email because zoe@example.net subscribed to" in part
        assert "Daily Selection, 12 Quay Street, Harbourtown 10115" in part
        assert "Manage your subscription" in part and "mailto:editors@example.org?subject=" in part
        assert "View in your browser" in part and p.view_url in part
    assert 'href="https://digest.example.org/unsubscribe/abc.def?x=1&amp;y=2"' in html


def test_text_part_wraps_and_carries_every_link(cfg: Config) -> None:
    sel = selection(12)
    _, text = personalise(render_variant(sel, cfg, variant="all", now=NOW), personal())
    for line in text.splitlines():
        assert len(line) <= 78 or re.fullmatch(r"\s*(\S+: )?https?://\S+", line), line
    hrefs = set(re.findall(r'href="([^"]+)"', personalise(
        render_variant(sel, cfg, variant="all", now=NOW), personal())[0]))
    for href in hrefs:
        assert href.replace("&amp;", "&") in text, href


# --- theme ------------------------------------------------------------------------


def test_theme_values_from_config(cfg: Config) -> None:
    themed = cfg.with_overrides(theme={
        "brand_color": "#0A7", "logo_url": "https://cdn.example.org/logo.png",
        "font_stack": 'Inter, "Helvetica Neue", sans-serif'})
    html = render_variant(selection(3), themed, variant="x", now=NOW).html
    assert "#00aa77" in html  # normalised brand colour on the masthead rule
    assert 'src="https://cdn.example.org/logo.png"' in html
    assert 'alt="The Daily Selection"' in html  # the logo's alt is the newsletter's name
    assert "font-family:Inter, 'Helvetica Neue', sans-serif" in html


@pytest.mark.parametrize(("key", "value"), [
    ("brand_color", "red"), ("logo_url", "javascript:alert(1)"),
    ("font_stack", "Arial; } body { display:none"),
])  # fmt: skip
def test_bad_theme_values_name_the_key(tmp_path: Path, key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=rf"theme\.{key}"):
        config_mod.from_dict({"theme": {key: value}}, tmp_path / "config.toml")


# --- Gmail clipping -------------------------------------------------------------------


def big_selection(n: int) -> Selection:
    long = "A long summary that goes on about the story in some detail. " * 6
    stories = [Story(replace(article(i, image=f"https://img.example.com/{i}.jpg"),
                             summary=long), score=1000 - i) for i in range(n)]
    return Selection(day=DAY, sections=(Section("Top stories", tuple(stories[:20])),
                                        Section("More", tuple(stories[20:]), topic="more")))


def test_twelve_stories_fit_with_room(cfg: Config) -> None:
    r = render_variant(selection(12), cfg, variant="all", now=NOW)
    assert not r.dropped
    assert html_part_size(r.html) < GMAIL_CLIP * 0.7


def test_too_many_stories_drop_the_lowest_ranked_and_say_so(
        cfg: Config, caplog: pytest.LogCaptureFixture) -> None:
    sel = big_selection(90)
    with caplog.at_level(logging.WARNING, logger="digest.render.variant"):
        r = render_variant(sel, cfg, variant="all", now=NOW)
    assert r.dropped, "90 stories should not fit"
    html, _ = personalise(r, personal())
    assert encoded_size(html) < GMAIL_CLIP
    kept = [s for s in sel.stories if s.lead.title in html]
    dropped = [s for s in sel.stories if s.lead.url not in html.replace("&amp;", "&")]
    assert len(dropped) == len(r.dropped)
    assert min(s.score for s in kept) > max(s.score for s in dropped)  # lowest ranked went
    assert "Gmail" in caplog.text and f"dropped {len(r.dropped)}" in caplog.text
    # not wastefully many: one more story would have passed the limit
    assert html_part_size(r.html) > GMAIL_CLIP * 0.9


def test_german_strings_everywhere(cfg: Config) -> None:
    de = cfg.with_overrides(newsletter={"language": "de"})
    html, text = personalise(render_variant(selection(5), de, variant="all", now=NOW),
                             personal())
    for part in (html, text):
        assert "Freitag, 27. November 2026" in part
        assert "Abonnement verwalten" in part and "Abbestellen" in part
        assert "Den ganzen Artikel bei Harbour Herald lesen" in part
        assert "5 Meldungen in 2 Rubriken" in part
    assert "Read the full story" not in html and "Unsubscribe" not in text


# --- template errors in partials and children ------------------------------------------


def test_error_in_a_partial_names_the_partial_and_line(tmp_path: Path, cfg: Config) -> None:
    from digest.errors import TemplateError

    shipped = (REPO / "templates" / "_components.mjml.j2").read_text("utf-8")
    (tmp_path / "_components.mjml.j2").write_text(
        shipped.replace("{{ story.lead.source }}", "{{ story.lead.sorce }}"), "utf-8")
    line = 1 + shipped[: shipped.index("{{ story.lead.source }}")].count("\n")
    bad = cfg.with_overrides(paths={"templates": str(tmp_path)})
    with pytest.raises(TemplateError, match=rf"_components\.mjml\.j2:{line}\b"):
        render_variant(selection(3), bad, variant="x", now=NOW)


def test_unknown_tag_in_a_child_block_names_the_child(tmp_path: Path, cfg: Config) -> None:
    from digest.errors import TemplateError

    (tmp_path / "mine.mjml.j2").write_text(
        '{% extends "daily.mjml.j2" %}\n{% block greeting %}\n<mj-section><mj-column>\n'
        "<mj-txt>hi</mj-txt>\n</mj-column></mj-section>\n{% endblock %}\n", "utf-8")
    (tmp_path / "mine.txt.j2").write_text('{% extends "daily.txt.j2" %}', "utf-8")
    mine = cfg.with_overrides(paths={"templates": str(tmp_path), "template": "mine"})
    with pytest.raises(TemplateError, match=r"mine\.mjml\.j2:4: unknown MJML tag <mj-txt>"):
        render_variant(selection(3), mine, variant="x", now=NOW)
