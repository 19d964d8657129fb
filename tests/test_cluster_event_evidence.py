"""Event evidence (``pairscore.Day.starts``): which pairs may start a story or join
two, held on small days written for each rule: a topic word is not an event, a
specific word counts in a headline, one outlet's two pieces need one specific name
in both headlines (or another outlet to tie them), a date is not what two pieces
share. Each day is padded with a day's other news, so that "few articles" is real."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np

from digest.models import Article
from digest.rank import cluster, pairscore
from tests.clusterset import load

T0 = datetime(2026, 3, 4, 8, tzinfo=UTC)

FILLERS = [  # a day's other news, on other subjects
    "Valdor council approves new park", "Kesmir bakery celebrates 200 years",
    "Storm floods coastal road near Orlan", "Tavik Rovers sign teenage striker",
    "Brenna hospital opens cancer wing", "Ostrel airport strike delays flights",
    "Qumar election count goes to recount", "Halden museum returns looted statue",
    "Zerin ferry runs aground, no one hurt", "Pellam school bans phones in class",
    "Arvost bank raises savings rates", "Misra wildfire forces evacuations",
    "Dunmore choir tours Japan", "Savel startup builds solid-state batteries",
    "Ulric bridge closes for repairs", "Norvik zoo welcomes twin pandas",
    "Farrow novelist wins book award", "Lisk police seize forged banknotes"]


def feed_day(rows: Sequence[tuple[str, str, str]]) -> list[Article]:
    """One article per (outlet, title, summary), ten minutes apart, then the
    fillers (each its own outlet): a small day, where few articles make a word
    specific (pairscore.specific_limit)."""
    return [Article(feed_url=f"https://{o}.example/feed", source=o, guid=f"g{k}",
                    url=f"https://{o}.example/{k}", title=t, summary=s,
                    published=T0 + timedelta(minutes=10 * k), id=k)
            for k, (o, t, s) in enumerate([*rows, *(("f" + str(k), t, "") for k, t in
                                                    enumerate(FILLERS))])]


def together(day_articles: list[Article], a: int, b: int) -> bool:
    return any({a, b} <= set(g) for g in cluster.cluster_indexes(day_articles))


CLIP = "From Tuesdays with Stories #641 Black Pleasantville @marknormand @JoeListComedy"
OLYMPICS = [
    ("cbs", "See the Olympic medal count for the Winter Games",
     "Here is where the medal count stands for Team USA at the Winter Olympics."),
    ("week", "The Olympic timekeepers keeping the Games on track",
     "Swiss watchmaking giant Omega has been at the finish line for nearly 100 years."),
    ("npr", "Bobsledder Elana Meyers Taylor wins gold at the Winter Olympics",
     "Meyers Taylor won her first Olympic gold in the women's monobob at the Games."),
    ("post", "Meyers Taylor, 41, takes monobob gold in her fifth Olympic Games",
     "The oldest American woman to win Winter Olympics gold, Meyers Taylor said."),
    ("ap", "Malinin speaks of Olympic pressure after falls at the Winter Games",
     "The skater says the Olympics brought endless pressure."),
    ("bbc", "Lindsey Vonn leaves Italy after her Olympic crash at the Winter Games",
     "The skier crashed in the Olympic downhill a week ago."),
]


def test_a_topic_word_does_not_start_a_story() -> None:
    # Every Olympic piece says "Olympic", "Games", "Winter": in a small day those
    # are the topic (in more articles than specific_limit), not an event. The medal
    # count and the timekeepers share nothing else and read only middling alike:
    # they score >= 0 (content evidence: a name under the blocking cap) but carry
    # no event evidence, so they do not start a story. The two reports on Meyers
    # Taylor share her name, in two articles only: that starts one.
    day_articles = feed_day(OLYMPICS)
    day = cluster.prepare(day_articles)
    limit = pairscore.specific_limit(len(day_articles))
    assert day.df["olympic"] > limit and day.df["meyer"] == 2 <= limit
    assert day.score(0, 1) >= 0 and float(day.vec[0] @ day.vec[1]) < pairscore.COS_EVENT
    pairs = np.array([0, 2]), np.array([1, 3])
    assert day.starts(*pairs).tolist() == [False, True]
    assert not together(day_articles, 0, 1)
    assert together(day_articles, 2, 3)


EPSTEIN = [
    ("week", "Hyatt chair joins growing list of Epstein files losers",
     "Thomas Pritzker stepped down as executive chair of the Hyatt Hotels Corporation over "
     "his ties with Jeffrey Epstein and Ghislaine Maxwell"),
    ("post", "The Epstein files have brought a wave of resignations and investigations",
     "A number of prominent figures have stepped down or are facing investigations after "
     "their communications with Jeffrey Epstein and his former longtime companion, "
     "Ghislaine Maxwell, were released last month."),
    ("cbs", "Epstein survivor tells CBS News how she was trafficked",
     "Juliette Bryant says Jeffrey Epstein assaulted her."),
    ("pod", "Comedians joke about the Epstein files", "A new special on Jeffrey Epstein."),
    ("npr", "What the Epstein files say about Wall Street", "Bankers appear in the emails."),
    ("npr", "Navalny was poisoned with dart frog toxin, European leaders say",
     "Five governments say Alexei Navalny was killed in prison."),
    ("week", "Alexei Navalny and Russia's history of poisonings",
     "The Kremlin's use of poison to silence critics."),
]


def test_a_specific_word_counts_when_a_headline_carries_it() -> None:
    # The Hyatt chair's resignation and the round-up of resignations share rare
    # names ("Ghislaine", "Maxwell", in two articles), but only in their leads,
    # where a name is background; their headlines share only the topic,
    # "Epstein". The two Navalny pieces share his name in their headlines.
    day_articles = feed_day(EPSTEIN)
    day = cluster.prepare(day_articles)
    limit = pairscore.specific_limit(len(day_articles))
    assert min(day.df["epstein"], day.df["file"]) > limit and day.df["ghislaine"] == 2 <= limit
    assert day.score(0, 1) >= 0 and float(day.vec[0] @ day.vec[1]) < pairscore.COS_EVENT
    assert "ghislaine" not in day.sigs[0].title_words | day.sigs[1].title_words
    assert day.starts(np.array([0, 5]), np.array([1, 6])).tolist() == [False, True]
    assert not together(day_articles, 0, 1)
    assert together(day_articles, 5, 6)


def test_one_outlets_two_pieces_need_one_specific_name_in_both_headlines() -> None:
    # Two clips of one podcast episode carry the same blurb: specific words in
    # common ("Pleasantville", "641") and a high cosine from the blurb alone. From
    # two outlets that would start a story; from one, the headlines must name the
    # same specific thing, as an outlet's update does ("Elana Meyers Taylor").
    day_articles = feed_day([
        ("pod", "The Worst Thing About the Barbershop", CLIP),
        ("pod", "Pod vs Com", CLIP),
        ("cbs", "Bobsledder Elana Meyers Taylor, 41, wins gold in 5th Olympic appearance",
         "She made history as the oldest American woman to win it."),
        ("cbs", "Bobsledder Elana Meyers Taylor captures gold, her sixth Olympic medal",
         "The American won her first gold in the women's monobob."),
    ])
    day = cluster.prepare(day_articles)
    assert day.score(0, 1) >= 0 and float(day.vec[0] @ day.vec[1]) >= pairscore.COS_EVENT
    assert day.starts(np.array([0, 2]), np.array([1, 3])).tolist() == [False, True]
    assert not together(day_articles, 0, 1)
    assert together(day_articles, 2, 3)


def test_another_outlet_can_tie_one_outlets_two_pieces() -> None:
    # One outlet's two reports on the talks name nothing specific in both
    # headlines (only "Iran", the day's topic), so their own pair starts nothing;
    # a second outlet's report, evidenced with each, ties all three into one story.
    day_articles = feed_day([
        ("cbs", "U.S. and Iran wrap up second round of nuclear talks in Geneva",
         "Negotiators say there has been progress in Geneva."),
        ("cbs", "Iran calls the talks with U.S. more constructive",
         "Negotiators sat down in Geneva to discuss a deal."),
        ("npr", "Iran and U.S. negotiators end second round of Geneva nuclear talks",
         "The talks in Geneva ended with progress, negotiators said."),
        ("post", "Popular anger burns in Iran after crackdown",
         "Iranians say outrage has not abated."),
        ("week", "Will tensions with Iran boil over into war?", "Threats from Washington grow."),
    ])
    day = cluster.prepare(day_articles)
    assert day.df["iran"] > pairscore.specific_limit(len(day_articles))
    assert not day.starts(np.array([0]), np.array([1]))[0]
    assert together(day_articles, 0, 1) and together(day_articles, 1, 2)


def test_a_date_is_not_what_two_pieces_share() -> None:
    # Two pages of one magazine issue: their headlines share only the date.
    day_articles = feed_day([
        ("week", "Magazine solutions - February 27, 2026",
         "Magazine solutions - February 27, 2026"),
        ("week", "Magazine printables - February 27, 2026",
         "Magazine printables - February 27, 2026"),
    ])
    day = cluster.prepare(day_articles)
    assert day.score(0, 1) >= 0 and "february" in day.sigs[0].title_keys & day.sigs[1].title_keys
    assert not day.starts(np.array([0]), np.array([1]))[0]
    assert not together(day_articles, 0, 1)
    assert [pairscore.calendar(w) for w in ("february", "tuesday", "2026", "27", "geneva")] == [
        True, True, True, False, False]
    assert pairscore.specific_limit(87) == pairscore.SPECIFIC == 3
    assert pairscore.specific_limit(181) == 6 and pairscore.specific_limit(20_000) == 10


def test_a_country_alone_does_not_start_a_story() -> None:
    # "China's" craze and a betting site courting "Chinese" users: two countries'
    # worth of words in common, one in a headline, and a middling cosine. A
    # country is where a topic happens; were it specific, the pair would start a
    # story on the rule for a headline's word (past COS_WORD).
    day_articles = feed_day([
        ("cbs", "The 'crying horse' toy taking over China's internet",
         "A plush horse with a tearful face has become the must-have gift across China, "
         "and Chinese shoppers cannot get enough."),
        ("row", "Polymarket courts Chinese users despite strict online gambling ban",
         "The prediction market is signing up users in China through VPNs, though betting "
         "is illegal there."),
    ])
    day = cluster.prepare(day_articles)
    a, b = day.sigs[0], day.sigs[1]
    assert {"china", "chinese"} <= a.words & b.words and "china" in a.title_words
    assert float(day.vec[0] @ day.vec[1]) >= pairscore.COS_WORD and day.score(0, 1) >= 0
    assert {"china", "chinese"} <= pairscore.PLACES
    assert not day.starts(np.array([0]), np.array([1]))[0]
    assert not together(day_articles, 0, 1)


def test_one_country_in_both_headlines_counts_when_the_reports_read_alike() -> None:
    # Two reports of one quake: their headlines share only "Chile"; the place
    # they name is specific (Antofagasta) only in the leads. The same country in
    # both headlines and a cosine past COS_PLACE is enough to start the story.
    day_articles = feed_day([
        ("npr", "Strong earthquake shakes northern Chile",
         "A magnitude 6.8 quake struck near Antofagasta before dawn, officials said."),
        ("post", "Buildings sway and residents flee in Chile",
         "A powerful tremor hit the mining city of Antofagasta before dawn."),
    ])
    day = cluster.prepare(day_articles)
    a, b = day.sigs[0], day.sigs[1]
    assert a.title_words & b.title_words == {"chile"}
    assert float(day.vec[0] @ day.vec[1]) >= pairscore.COS_PLACE
    assert day.starts(np.array([0]), np.array([1]))[0]
    assert together(day_articles, 0, 1)


def test_a_word_an_outlet_keeps_repeating_is_its_beat_not_an_event() -> None:
    # A bigger day (the fictional day as the other news): up to six articles make
    # a word specific. "Olympic" and "Games" are in five and four, but three of
    # them are one outlet's: its beat. The medal count and the timekeepers share
    # only those, in both headlines, at a middling cosine: they start nothing.
    day_articles = feed_day([
        ("cbs", "See the Olympic medal count for the Winter Games",
         "Here is where the medal count stands for Team USA."),
        ("week", "The Olympic timekeepers keeping the Games on track",
         "Swiss watchmaking giant Omega has been at the finish line for nearly 100 years."),
        ("cbs", "See the Olympic schedule for the Milano Cortina Games",
         "Every event, day by day."),
        ("cbs", "Team USA headed to the Olympic hockey final at the Games",
         "The women beat Sweden."),
        ("npr", "Bobsledder Elana Meyers Taylor wins Olympic gold",
         "Her first gold in the monobob."),
    ])
    day_articles += [replace(a, id=1000 + k) for k, a in enumerate(load().articles)]
    day = cluster.prepare(day_articles)
    limit = pairscore.specific_limit(len(day_articles))
    assert pairscore.SPECIFIC < day.df["game"] < day.df["olympic"] <= limit
    assert day.sigs[0].title_words & day.sigs[1].title_words == {"olympic", "game"}
    assert day.score(0, 1) >= 0 and float(day.vec[0] @ day.vec[1]) < pairscore.COS_EVENT
    assert not day.starts(np.array([0]), np.array([1]))[0]
    assert not together(day_articles, 0, 1)


def test_a_rare_word_in_the_headlines_needs_the_two_to_read_alike() -> None:
    # "Rotterdam" is in both headlines and in no other article: specific. But a
    # dock strike and a mayor's cycle lanes read nothing alike (cosine under
    # COS_WORD): a rare word two headlines share is not by itself one event.
    day_articles = feed_day([
        ("post", "Rotterdam dockers walk out over pay",
         "Harbour cranes stood idle from dawn as the strike began."),
        ("week", "Rotterdam's new mayor promises more cycle lanes",
         "The city council backed the plan on Monday."),
    ])
    day = cluster.prepare(day_articles)
    a, b = day.sigs[0], day.sigs[1]
    assert a.title_words & b.title_words == {"rotterdam"} and day.df["rotterdam"] == 2
    assert float(day.vec[0] @ day.vec[1]) < pairscore.COS_WORD
    assert not day.starts(np.array([0]), np.array([1]))[0]
