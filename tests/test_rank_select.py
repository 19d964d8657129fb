"""Selection: variety, personal sections, per-subscriber 'never twice', --explain."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from digest import pipeline
from digest.models import Rendered, Subscriber
from digest.rank import select as rank
from digest.store.facade import Store
from tests.test_rank import DAY, NOW, art, make_config

REPO = Path(__file__).resolve().parents[1]


def test_diversity_keeps_two_takes_on_one_subject_out_of_the_top(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    a = art("Alpha", "Brandt unveils budget in Ostravia parliament", 1,
            "Finance Minister Ilse Brandt presented the budget to the Ostravia parliament.")
    b = art("Beta", "Why the Brandt budget pleases nobody", 1,
            "Economists in Ostravia say Ilse Brandt tried to please everyone.")
    c = art("Gamma", "Harbour ferry gets a new timetable", 2, "The harbour ferry changes times.")
    ranked = rank.rank([a, b, c], cfg, now=NOW, day=DAY)
    assert len(ranked.stories) >= 2
    top = ranked.selection.sections[0]
    assert top.title == "Top stories"
    leads = {s.lead.title for s in top.stories}
    assert not {a.title, b.title} <= leads  # not two takes on one subject at the top
    assert c.title in leads


def test_subscriber_topics_choose_and_order_sections(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    items = [art("Beta", "Minister opens summit", 1), art("Beta", "Chip shortage eases", 1),
             art("Gamma", "Minister resigns over summit", 2),
             art("Gamma", "Software giant splits", 3),
             art("Alpha", "New chip plant for the north", 4),
             art("Beta", "Minister signs border treaty", 5), art("Beta", "Summit date set", 6)]
    ranked = rank.rank(items, cfg, now=NOW, day=DAY)
    person = Subscriber(email="t@example.org", topics=("tech", "world", "tech"))
    key = rank.variant_key(person)
    assert key == "tech+world"
    assert rank.variant_key(Subscriber(email="w@example.org", topics=("world", "tech"))) \
        == "world+tech"
    titles = [s.title for s in rank.for_variant(ranked, cfg, key).sections]
    topical = [t for t in titles if t in ("Technology", "World")]
    assert topical == ["Technology", "World"]
    reverse = [s.title for s in rank.for_variant(ranked, cfg, "world+tech").sections]
    assert [t for t in reverse if t in ("Technology", "World")] == ["World", "Technology"]


def test_stories_without_a_section_fill_more_stories_up_to_max_stories(tmp_path: Path) -> None:
    # A real day: most stories have no topic, and the topic sections cannot fill the
    # edition. The general edition still carries max_stories; a topic variant does not
    # get stories outside the topics its readers chose.
    cfg = make_config(tmp_path).with_overrides(selection={"max_stories": 8, "per_source": 9})
    items = [art(("Alpha", "Beta", "Gamma")[k % 3], title, k % 5 + 1) for k, title in enumerate([
        "Ferry timetable changes in spring", "Lighthouse keeper retires after forty years",
        "Harbour festival draws record crowds", "Old cannery becomes a museum",
        "Storm closes coastal road overnight", "Fishermen protest new quota rules",
        "Island school wins chess title", "Seal pup rescued on the beach",
        "Bakery celebrates its centenary", "Bridge repairs finish early"])]
    ranked = rank.rank(items, cfg, now=NOW, day=DAY)
    sections = ranked.selection.sections
    assert len(ranked.selection.stories) == 8
    assert sections[-1].title == "More stories" and sections[-1].topic is None
    scores = [s.score for s in sections[-1].stories]
    assert scores == sorted(scores, reverse=True)
    assert "More stories" not in [s.title for s in rank.for_variant(ranked, cfg, "tech").sections]
    off = cfg.with_overrides(selection={"more_title": ""})
    assert len(rank.rank(items, off, now=NOW, day=DAY).selection.stories) < 8


def test_without_drops_sent_articles_and_repicks_the_lead(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    a = art("Alpha", "Central bank raises interest rate to 4.5 percent", 2,
            "The central bank raised its main interest rate to 4.5 percent on Thursday.")
    b = art("Beta", "Central bank raises interest rate to 4.5 percent amid inflation", 3,
            "Policymakers at the central bank raised the interest rate to 4.5 percent.")
    ranked = rank.rank([a, b], cfg, now=NOW, day=DAY)
    story = next(s for s in ranked.stories if len(s.articles) == 2)
    assert story.lead.id == a.id
    kept = rank.without(ranked.stories, {a.id or 0}, cfg, NOW)
    assert [s.lead.id for s in kept] == [b.id]
    assert kept[0].others == ()
    assert dict(kept[0].reasons)["coverage"] == 1.0
    assert rank.without(ranked.stories, {a.id or 0, b.id or 0}, cfg, NOW) == []
    sel = rank.for_variant(ranked, cfg, "all", exclude={a.id or 0})
    assert a.id not in {x.id for s in sel.stories for x in s.articles}


def _render(variant: str) -> Rendered:
    return Rendered(variant=variant, subject="s", preheader="p", mjml="", html="", text="")


def test_store_knows_what_each_subscriber_was_sent(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "d.db")
    items = [art("Alpha", f"Story number {i}", 1) for i in range(4)]
    store.add_articles(items)
    ids = [a.id for a in store.articles_since(None)]
    yesterday = DAY - timedelta(days=1)
    store.save_digest(yesterday, [_render("all"), _render("tech")], ids[:3])
    store.save_variant_articles(yesterday, {"all": ids[:2], "tech": ids[2:3]})
    store.plan_deliveries(yesterday, [("ada@example.org", "tech"), ("bob@example.org", "all"),
                                      ("cy@example.org", "all")])
    store.claim_many(yesterday, ["ada@example.org", "bob@example.org", "cy@example.org"], "s")
    store.finish(yesterday, "ada@example.org", "sent", holder="s")
    store.finish(yesterday, "bob@example.org", "sent", holder="s")
    store.finish(yesterday, "cy@example.org", "failed", holder="s", error="550 no such user")
    assert store.sent_to(["ada@example.org"], before=DAY) == {ids[2]}
    assert store.sent_to(["bob@example.org"], before=DAY) == set(ids[:2])
    assert store.sent_to(["cy@example.org"], before=DAY) == set()  # never got it
    assert store.sent_to(["ada@example.org", "bob@example.org"], before=DAY) == set(ids[:3])
    assert store.sent_to(["ada@example.org"], before=yesterday) == set()
    assert store.sent_to([], before=DAY) == set()
    store.close()


def _project(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "feeds", tmp_path / "feeds")
    text = (REPO / "config.toml").read_text()
    text = text.replace('templates = "templates"', f'templates = "{REPO / "templates"}"')
    (tmp_path / "config.toml").write_text(text)
    (tmp_path / "subscribers").mkdir()
    return tmp_path / "config.toml"


def _digest(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "digest", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120, cwd=config.parent,
                          env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
    return proc


def test_rank_cli_explain_all_and_json(tmp_path: Path) -> None:
    config = _project(tmp_path)
    _digest(config, "collect")
    explained = _digest(config, "rank", "--explain").stdout
    assert "score:" in explained and "recency" in explained and "coverage" in explained
    assert "lead:" in explained and "also:" in explained
    assert "selected 12 of" in explained
    stories = json.loads(_digest(config, "rank", "--json").stdout)
    every = json.loads(_digest(config, "rank", "--json", "--all").stdout)
    assert len(every) > len(stories) == 12
    first = stories[0]
    assert {"title", "url", "source", "score", "components", "topics", "sections",
            "articles"} <= set(first)
    assert {"recency", "weight", "topics", "coverage"} <= set(first["components"])
    assert {"url", "title", "source", "published"} <= set(first["articles"][0])
    assert any(len(s["articles"]) > 1 for s in stories)
    assert any(not s["sections"] for s in every)  # --all lists the unselected ones too
    listed = _digest(config, "rank", "--all").stdout
    assert f"selected 12 of {len(every)} stories" in listed


def test_nothing_new_for_one_variant_sends_it_nothing(tmp_path: Path) -> None:
    config_path = _project(tmp_path)
    from digest import config as configuration

    cfg = configuration.load(config_path)
    store = pipeline.open_store(cfg)
    _digest(config_path, "collect")
    ids = {a.id for a in store.articles_since(None)}
    now = pipeline.utcnow()
    day = pipeline.today(cfg, now)
    yesterday = day - timedelta(days=1)
    # Ada got every article yesterday; Bob got nothing (his delivery failed).
    store.save_variant_articles(yesterday, {"all": [i for i in ids if i is not None]})
    store.plan_deliveries(yesterday, [("ada@example.org", "all"), ("bob@example.org", "tech")])
    store.claim_many(yesterday, ["ada@example.org", "bob@example.org"], "s")
    store.finish(yesterday, "ada@example.org", "sent", holder="s")
    store.finish(yesterday, "bob@example.org", "failed", holder="s", error="550")
    people = [Subscriber(email="ada@example.org"),
              Subscriber(email="bob@example.org", topics=("tech",))]
    built = pipeline.build_digest(cfg, store, now=now, subscribers=people)
    assert "all" in built.quiet and "tech" in built.variants
    assert built.carried["tech"]
    store.close()
