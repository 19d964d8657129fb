"""The editor's desk: every `digest desk` command as a subprocess, story ids, edits
following a story through a later collect on the real day, the note's markup made
safe, and edits refused once the edition is frozen."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from digest import config as configuration
from digest import pipeline
from digest.models import Article, Edit, Section, Selection, Sentence, Story, Summary
from digest.rank import desk
from digest.render import note
from tests.peers import FeedServer, SmtpServer
from tests.test_e2e import make_project
from tests.test_realday import REALDAY
from tests.test_realday import _project as realday_project

REPO = Path(__file__).resolve().parents[1]


def run(config: Path, *args: str, at: str | None = None,
        code: int = 0) -> subprocess.CompletedProcess[str]:
    """`digest --config CONFIG ARGS`, with the clock at ``at`` (faketime) if given."""
    cmd = [sys.executable, "-m", "digest", "--config", str(config), *args]
    if at is not None:
        if shutil.which("faketime") is None:
            pytest.skip("faketime not installed (apt-get install faketime; .ci/run does)")
        cmd = ["faketime", at, *cmd]
    env = {**os.environ, "COLUMNS": "200", "USER": "ed", "TZ": "UTC"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=config.parent,
                          env=env)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    return proc


def show(config: Path, at: str | None = None) -> dict:  # type: ignore[type-arg]
    return json.loads(run(config, "desk", "show", "--json", at=at).stdout)  # type: ignore[no-any-return]


def edition(view: dict) -> list[dict]:  # type: ignore[type-arg]
    return [s for sec in view["sections"] for s in sec["stories"]]


def test_every_desk_command(tmp_path: Path, feed_server: FeedServer) -> None:
    config = make_project(tmp_path, feed_server, 2525)
    run(config, "collect")
    ranked = json.loads(run(config, "rank", "--json").stdout)
    assert all(len(s["id"]) == 6 for s in ranked)  # the new field, beside the old ones
    assert {"title", "url", "source", "score", "sections", "articles"} <= set(ranked[0])
    assert ranked[0]["id"] in run(config, "rank").stdout
    assert ranked[0]["id"] in run(config, "rank", "--explain").stdout
    view = show(config)
    first = edition(view)
    assert [s["id"] for s in first] == [s["id"] for s in ranked]
    outside = view["not_selected"][0]["id"]
    several = next(s for s in first if len(s["articles"]) > 1)

    run(config, "desk", "pin", outside, "--at", "2")
    run(config, "desk", "drop", first[1]["id"])
    run(config, "desk", "drop", several["articles"][-1])  # one article, by URL
    run(config, "desk", "lead", first[3]["id"])
    run(config, "desk", "move", first[4]["id"], "science")  # the title, any case
    run(config, "desk", "headline", first[5]["id"], "A headline  the desk wrote")
    run(config, "desk", "blurb", first[5]["id"], "The desk's own blurb.")
    (tmp_path / "note.md").write_text("Good *morning*.\n\nSee [the plan](https://example.org/p).")
    run(config, "desk", "note", "--file", str(tmp_path / "note.md"), "--by", "chief")

    view = show(config)
    now = edition(view)
    ids = [s["id"] for s in now]
    assert ids[0] == first[3]["id"] and ids[1] == outside  # lead, then the pin at 2
    assert first[1]["id"] not in ids
    cut = next(s for s in now if s["id"] == several["id"] or
               several["articles"][0] in s["articles"])
    assert several["articles"][-1] not in cut["articles"]
    science = next(sec for sec in view["sections"] if sec["title"] == "Science")
    assert first[4]["id"] in [s["id"] for s in science["stories"]]
    rewritten = next(s for s in now if s["id"] == first[5]["id"])
    assert rewritten["title"] == "A headline the desk wrote" and rewritten["edited"]
    assert rewritten["summary"] == "The desk's own blurb."
    assert view["note"].startswith("Good *morning*.")
    log = json.loads(run(config, "desk", "log", "--json").stdout)
    assert [r["kind"] for r in log] == ["pin", "drop", "drop_article", "lead", "move",
                                        "headline", "blurb", "note"]
    assert log[0]["by"] == "ed" and log[-1]["by"] == "chief" and log[0]["at"]
    assert "pinned" in run(config, "desk", "log").stdout

    # The email carries the edits: the rendered edition, HTML and text.
    out = tmp_path / "out"
    run(config, "render", "--out", str(out))
    html, text = (out / "digest.html").read_text(), (out / "digest.txt").read_text()
    assert "A headline the desk wrote" in html and "A headline the desk wrote" in text
    assert "<em>morning</em>" in html and 'href="https://example.org/p"' in html
    assert "Good morning." in text and "the plan <https://example.org/p>" in text

    # Reset one story, then everything; the log keeps all of it.
    assert "1 edit undone" in run(config, "desk", "reset", first[3]["id"]).stdout
    assert edition(show(config))[0]["id"] != first[3]["id"]
    run(config, "desk", "reset")
    assert [s["id"] for s in edition(show(config))] == [s["id"] for s in first]
    log = json.loads(run(config, "desk", "log", "--json").stdout)
    assert sum(r["kind"] == "reset" for r in log) == 2 and all(
        r["undone_at"] for r in log if r["kind"] != "reset")

    approved = run(config, "desk", "approve").stdout
    assert approved.startswith("approved: the ") and "by ed" in approved
    assert show(config)["approved"]["by"] == "ed"


def test_unknown_ids_and_bad_values_are_one_line(tmp_path: Path, feed_server: FeedServer) -> None:
    config = make_project(tmp_path, feed_server, 2525)
    run(config, "collect")
    for args in (["pin", "zzzzzz"], ["drop", "zzzzzz"], ["headline", "zzzzzz", "x"],
                 ["drop", "https://example.org/not-in-the-day"]):
        err = run(config, "desk", *args, code=2).stderr
        assert len(err.splitlines()) == 1 and "digest desk show" in err, err
        assert args[1] in err
    some = show(config)["sections"][0]["stories"][0]["id"]
    err = run(config, "desk", "move", some, "Nowhere", code=1).stderr
    assert "no section 'Nowhere'" in err and "Top stories" in err
    assert "Exit codes" in run(config, "desk", "pin", "--help").stdout
    assert json.loads(run(config, "desk", "log", "--json").stdout) == []


def test_edits_refused_once_the_edition_is_frozen(tmp_path: Path, feed_server: FeedServer,
                                                  smtp_server: SmtpServer) -> None:
    config = make_project(tmp_path, feed_server, smtp_server.port)
    run(config, "collect")
    story = show(config)["sections"][0]["stories"][0]["id"]
    run(config, "desk", "headline", story, "Before the send")
    run(config, "send")
    assert smtp_server.received  # the edit went out ...
    body = smtp_server.received[0].message.get_body(("plain",))
    assert body is not None and "Before the send" in body.get_content()
    for args in (["headline", story, "After"], ["drop", story], ["note", "late"], ["reset"],
                 ["approve"]):
        err = run(config, "desk", *args, code=1).stderr
        assert len(err.splitlines()) == 1 and "frozen" in err and "refused" in err, err
    assert show(config)["frozen_at"]


# -- the real day: an edit follows its story when other outlets join it -----------

NEWS = ["cbs-world.xml", "washington-post-world.xml", "npr-world.xml", "the-week.xml"]
# CBS News on the Geneva Iran talks: at 07:00 the Post's report joins the story and
# leads it, so neither the story's lead nor its lead's URL can carry the edits.
IRAN = "https://www.cbsnews.com/news/us-iran-talks-geneva-trump-military-threat/"


def test_edits_follow_a_story_through_a_later_collect(tmp_path: Path) -> None:
    with FeedServer(REALDAY) as server:
        early = realday_project(tmp_path, [server.url(NEWS[0])], 2525).path
        run(early, "collect", at="2026-02-18 06:00:00")
        view = show(early, at="2026-02-18 06:05:00")
        iran = next(s for s in edition(view) + view["not_selected"] if IRAN in s["articles"])
        assert len(iran["articles"]) == 1
        run(early, "desk", "pin", iran["id"], "--at", "1", at="2026-02-18 06:06:00")
        run(early, "desk", "headline", iran["id"], "Iran talks go on in Geneva",
            at="2026-02-18 06:07:00")
        # 07:00: three more outlets are collected; CBS News joins the story.
        shutil.rmtree(tmp_path / "subscribers")
        config = realday_project(tmp_path, [server.url(n) for n in NEWS], 2525).path
        run(config, "collect", at="2026-02-18 07:00:00")
    view = show(config, at="2026-02-18 07:01:00")
    lead = edition(view)[0]
    assert lead["id"] == iran["id"]  # the same id, and the edits still hold
    assert IRAN in lead["articles"] and len(lead["articles"]) > 1
    assert lead["source"] == "washingtonpost.com" and lead["url"] != IRAN  # a new lead
    assert lead["title"] == "Iran talks go on in Geneva" and lead["edited"]
    assert view["gone"] == []
    ranked = json.loads(run(config, "rank", "--json", "--all", at="2026-02-18 07:01:00").stdout)
    assert iran["id"] in [s["id"] for s in ranked]
    # Days later the story has aged out of the window: the desk says its edits are gone.
    later = run(config, "desk", "show", "--day", "2026-02-18", at="2026-02-21 07:00:00").stdout
    assert f"gone: the pinned edit on {iran['id']}" in later
    assert f"gone: the headline edit on {iran['id']}" in later


# -- the pure parts ---------------------------------------------------------------

def _art(i: int, url: str | None = None, source: str = "A") -> Article:
    return Article(feed_url="f", source=source, guid=str(i), url=url or f"https://x.org/{i}",
                   title=f"Story {i}", summary="s", published=datetime(2026, 2, 18, tzinfo=UTC),
                   id=i)


def test_story_id_is_its_first_seen_member_and_holds_as_members_join() -> None:
    alone = Story(_art(5))
    joined = Story(_art(9, source="B"), (_art(5), _art(12, source="C")))  # a new lead, too
    assert desk.story_id(alone) == desk.story_id(joined) == desk.url_id("https://x.org/5")
    assert desk.story_id(Story(_art(4))) != desk.story_id(alone)


def test_an_edit_whose_story_left_the_day_is_gone() -> None:
    day = date(2026, 2, 18)
    kept, left = Story(_art(1)), Story(_art(2))
    sel = Selection(day, (Section("Top stories", (kept,)),))
    edit = Edit(kind="pin", day=day, anchor=left.lead.url, members=(left.lead.url,),
                story=desk.story_id(left))
    applied = desk.apply(sel, [kept], [edit])
    assert applied.gone == (edit,) and applied.selection.stories == (kept,)
    # Its anchor went but another member stayed: the edit finds the story by that one.
    moved = Edit(kind="drop", day=day, anchor="https://x.org/gone",
                 members=("https://x.org/gone", kept.lead.url))
    assert desk.apply(sel, [kept], [moved]).selection.stories == ()


def test_note_markup_is_escaped_and_only_web_links_are_links() -> None:
    hostile = ('<script>alert(1)</script> **strong** *em* [click](javascript:alert) '
               '[ok](https://example.org/?a=1&b="2") <img src=x onerror=alert(1)>\n\n'
               '[data](data:text/html,hi) second')
    html = str(note.to_html(hostile))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<img" not in html and "&lt;img" in html
    assert "javascript:" not in html and "data:" not in html
    assert ">click<" not in html and "click" in html  # the words stay, the link goes
    assert '<a href="https://example.org/?a=1&amp;b=&#34;2&#34;"' in html
    assert "<strong>strong</strong>" in html and "<em>em</em>" in html
    assert html.count("<p ") == 2
    text = note.to_text(hostile)
    assert "click javascript" not in text and "javascript:" not in text
    assert "ok <https://example.org/?a=1&b=\"2\">" in text and "**" not in text


def test_the_note_reaches_both_parts_escaped(tmp_path: Path, feed_server: FeedServer) -> None:
    config = make_project(tmp_path, feed_server, 2525)
    run(config, "collect")
    run(config, "desk", "note", "Hi <b>there</b> [x](javascript:alert) **bold**")
    out = tmp_path / "out"
    run(config, "render", "--out", str(out))
    html, text = (out / "digest.html").read_text(), (out / "digest.txt").read_text()
    assert "Hi &lt;b&gt;there&lt;/b&gt; x <strong>bold</strong>" in html
    assert "javascript" not in html
    assert "Hi <b>there</b> x bold" in text
    cfg = configuration.load(config)
    assert pipeline.today(cfg, pipeline.utcnow()).isoformat() in run(
        config, "desk", "show").stdout


def test_a_blurb_replaces_the_story_summary_the_email_would_show() -> None:
    # The email shows a multi-outlet story's summary in place of its lead's teaser: the
    # editor's blurb must replace that too, or the rewrite would never be seen.
    day = date(2026, 2, 18)
    summary = Summary((Sentence("A whole sentence from outlet B.", "B"),))
    story = Story(_art(1), (_art(2, source="B"),), summary=summary)
    sel = Selection(day, (Section("Top stories", (story,)),))
    edit = Edit(kind="blurb", day=day, anchor=story.lead.url,
                members=tuple(a.url for a in story.articles), text="The desk's own words.",
                story=desk.story_id(story))
    [shown] = desk.apply(sel, [story], [edit]).selection.stories
    assert shown.lead.summary == "The desk's own words." and shown.summary is None
    headline = replace(edit, kind="headline", text="New headline")
    [titled] = desk.apply(sel, [story], [headline]).selection.stories
    assert titled.lead.title == "New headline" and titled.summary == summary
