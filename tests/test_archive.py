"""`digest serve`'s archive: past editions at /archive and the Atom feed at /feed.xml.

A real day (tests/data/realday, replayed at 2026-02-18 07:00 UTC) is collected, ranked,
rendered and sent to real subscribers through aiosmtpd, one of them with a hostile
name; a second time-zone group's edition is frozen the way the daemon freezes it
(pipeline.prepare). The app runs in a real uvicorn on loopback with `digest serve`'s
own settings, and everything is read over HTTP, the feed by feedparser and by lxml.
"""

from __future__ import annotations

import functools
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import feedparser
import httpx
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from lxml import etree

from digest import config as config_mod
from digest import pipeline
from digest.config import Config
from digest.models import Rendered, Subscriber
from digest.render.personal import TOKEN_MARK
from digest.web import archive
from tests.peers import FeedServer, SmtpServer
from tests.test_serve_limits import Dribble, Threaded, _connect, limits, wait_closed

REPO = Path(__file__).resolve().parents[1]
REALDAY = REPO / "tests" / "data" / "realday" / "feeds"
NOW = datetime(2026, 2, 18, 7, 0, tzinfo=UTC)
DAY = NOW.date()
TOKYO = "Asia/Tokyo"
A = "{http://www.w3.org/2005/Atom}"
# Subscribers whose every field must stay out of the archive and the feed.
HOSTILE_EMAIL = "zed.secretive+archive@example.org"
HOSTILE_NAME = "Zed \"<img src=x onerror=alert('name')>\" Privatesurname"
READER = "reader.person@example.org"
KENJI = "kenji.tokyo@example.net"
PERSONAL = (HOSTILE_EMAIL, "zed.secretive", "Privatesurname", "onerror", READER,
            "reader.person", "Rea Der", KENJI, "kenji.tokyo", "Kenji", "/unsubscribe/",
            "__dgst_")


@dataclass(frozen=True)
class Sent:
    """The real day's project after the run: a copy per test (tests add editions)."""

    root: Path
    subjects: dict[str, str]  # group -> subject of its edition
    stories: int  # story cards in the newsletter's own edition
    mailed: list[bytes]  # what reached the SMTP server


def _write_project(root: Path, urls: list[str], smtp_port: int) -> Path:
    text = (REPO / "config.toml").read_text()
    head, _, rest = text.partition("[[feeds]]")
    feeds = "".join(f'[[feeds]]\nurl = "{u}"\n\n' for u in urls)
    text = head + feeds + rest[rest.index("# Topics"):]
    text = re.sub(r"(?m)^max_age_hours = \d+", "max_age_hours = 36", text)
    text = text.replace("port = 2525", f"port = {smtp_port}")
    text = text.replace('templates = "templates"', f'templates = "{REPO / "templates"}"')
    (root / "config.toml").write_text(text)
    (root / "subscribers").mkdir()
    name = HOSTILE_NAME.replace("\\", "\\\\").replace('"', '\\"')
    (root / "subscribers" / "readers.toml").write_text(
        f'[[subscriber]]\nemail = "{HOSTILE_EMAIL}"\nname = "{name}"\n\n'
        f'[[subscriber]]\nemail = "{READER}"\nname = "Rea Der"\ntimezone = "Europe/Berlin"\n\n'
        f'[[subscriber]]\nemail = "{KENJI}"\nname = "Kenji Tanaka"\ntimezone = "{TOKYO}"\n')
    return root / "config.toml"


@pytest.fixture(scope="module")
def sent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sent]:
    root = tmp_path_factory.mktemp("archive")
    served = root / "served"
    shutil.copytree(REALDAY, served)
    with pytest.MonkeyPatch.context() as mp, SmtpServer() as smtp, FeedServer(served) as feeds:
        mp.setenv("DIGEST_SECRET", "test-secret")
        mp.setenv("HOME", str(root / "home"))
        names = sorted(p.name for p in served.iterdir() if p.is_file())
        config = config_mod.load(_write_project(root, [feeds.url(n) for n in names], smtp.port))
        # The newsletter's own group, as the daemon runs it at 07:00 Berlin.
        report = pipeline.run_once(config, now=NOW, group="")
        assert report.send.sent == 2, report
        # Tokyo's edition, frozen the way its own run freezes it.
        store = pipeline.open_store(config)
        try:
            kenji = Subscriber(email=KENJI, name="Kenji Tanaka", timezone=TOKYO)
            tokyo = pipeline.prepare(config, store, now=NOW + timedelta(hours=1),
                                     subscribers=[kenji], group=TOKYO)
            stored = store.load_digest(DAY)
        finally:
            store.close()
        assert not tokyo.empty
        own = next(r for r in stored if r.variant == "all")
        subjects = {"": own.subject,
                    TOKYO: next(r.subject for r in stored if r.variant == f"{TOKYO}|all")}
        yield Sent(root, subjects, own.html.count('<h3 class="ds-ink"'),
                   [m.data for m in smtp.received])


@pytest.fixture
def project(sent: Sent, tmp_path: Path) -> Config:
    """A copy of the sent project, so a test may add editions of its own."""
    root = tmp_path / "project"
    shutil.copytree(sent.root, root, ignore=shutil.ignore_patterns("served", "home"))
    return config_mod.load(root / "config.toml")


def save(config: Config, day: date, subject: str, *, variant: str = "all",
         html: str = "<p>__dgst_x</p>", at: datetime | None = None) -> None:
    """A frozen digest stored the way pipeline.prepare stores one."""
    store = pipeline.open_store(config)
    try:
        rendered = Rendered(variant=variant, subject=subject, preheader="pre", mjml="",
                            html=html, text="text")
        store.save_digest(day, [rendered], [], now=at or datetime.combine(
            day, datetime.min.time(), UTC).replace(hour=6))
    finally:
        store.close()


def local(config: Config, server: Threaded, url: str) -> str:
    """A link the app made (on newsletter.base_url), pointed at this test's server."""
    base = config.newsletter.base_url
    assert url.startswith(base + "/"), url
    return server.url(url[len(base):])


# -- the list ---------------------------------------------------------------------------

def test_archive_lists_each_frozen_edition_newest_first(project: Config, sent: Sent) -> None:
    config = project
    earlier = DAY - timedelta(days=3)
    save(config, earlier, "Earlier: three days ago", html="<p>own edition of three days ago</p>")
    save(config, earlier, "Earlier in Tokyo", variant=f"{TOKYO}|all",
         html="<p>Tokyo edition of three days ago</p>")
    base = config.newsletter.base_url
    with Threaded(config) as server, httpx.Client(timeout=10) as http:
        page = http.get(server.url("/archive"))
        assert page.status_code == 200, page.text
        text = page.text
        own = f'href="{base}/view/{DAY.isoformat()}"'
        tokyo = f'href="{base}/view/{DAY.isoformat()}?zone={TOKYO}"'
        old = f'href="{base}/view/{earlier.isoformat()}"'
        assert text.index(own) < text.index(tokyo) < text.index(old)
        assert "Wednesday, 18 February 2026" in text and "(Asia/Tokyo edition)" in text
        assert f"· {sent.stories} stories" in text and sent.stories >= 5
        for subject in sent.subjects.values():
            assert archive._e(subject) in text
        assert f'href="{base}/feed.xml"' in text
        # Each link is the web version of that edition, the right one.
        for link, subject in ((own, sent.subjects[""]), (tokyo, sent.subjects[TOKYO])):
            view = http.get(local(config, server, link[6:-1]))
            assert view.status_code == 200
            assert archive._e(subject) in view.text or subject in view.text
        # Each group's link shows that group's own frozen variant.
        store = pipeline.open_store(config)
        try:
            stored = {r.variant: r for r in store.load_digest(DAY)}
        finally:
            store.close()
        for zone, variant in ((None, "all"), (TOKYO, f"{TOKYO}|all")):
            query = f"?zone={zone}" if zone else ""
            shown = http.get(server.url(f"/view/{DAY.isoformat()}{query}")).text
            assert shown == archive.web_version(config, stored[variant], DAY, zone=zone)
        # The real day's two editions happen to carry the same news; stored ones differ.
        for zone, words in (("", "own edition"), (TOKYO, "Tokyo edition")):
            query = f"?zone={zone}" if zone else ""
            shown = http.get(server.url(f"/view/{earlier.isoformat()}{query}")).text
            assert f"<p>{words} of three days ago</p>" in shown, zone
        assert http.get(server.url(f"/view/{DAY.isoformat()}?zone=Mars/Base")).status_code == 404


def test_a_dry_run_or_render_freezes_nothing_so_nothing_is_listed(
        tmp_path: Path, feed_server: FeedServer) -> None:
    from tests.test_e2e import digest, make_project

    path = make_project(tmp_path, feed_server, 2525)
    assert digest(path, "collect").returncode == 0
    assert digest(path, "send", "--dry-run").returncode == 0
    assert digest(path, "render", "--out", str(tmp_path / "out")).returncode == 0
    config = config_mod.load(path)
    with Threaded(config) as server, httpx.Client(timeout=10) as http:
        page = http.get(server.url("/archive"))
        assert page.status_code == 200 and "No editions yet" in page.text
        assert "/view/" not in page.text
        assert feedparser.parse(http.get(server.url("/feed.xml")).content).entries == []


def test_pages_of_editions(project: Config) -> None:
    config = project
    days = [DAY - timedelta(days=i) for i in range(1, 66)]  # 65 more days: 66 in all
    for d in days:
        save(config, d, f"Edition of {d.isoformat()}")
    base = config.newsletter.base_url
    with Threaded(config) as server, httpx.Client(timeout=10) as http:
        seen: list[str] = []
        for n, count in ((1, 30), (2, 30), (3, 6)):
            page = http.get(server.url(f"/archive?page={n}"))
            assert page.status_code == 200
            listed = re.findall(rf'href="{re.escape(base)}/view/([0-9-]+)"', page.text)
            assert len(listed) == count, (n, listed)
            assert f"(page {n} of 3)" in page.text
            assert ('rel="prev"' in page.text) == (n > 1)
            assert ('rel="next"' in page.text) == (n < 3)
            seen += listed
        assert seen == sorted(seen, reverse=True) and len(set(seen)) == 66
        assert http.get(server.url("/archive")).text == http.get(
            server.url("/archive?page=1")).text
        for bad in ("4", "0", "-1", "x", "1.5", "", "٢", "99999999999"):
            missing = http.get(server.url("/archive"), params={"page": bad})
            assert missing.status_code == 404, bad
            assert "no such page" in missing.text


# -- the feed ---------------------------------------------------------------------------

def structurally_valid(body: bytes, config: Config) -> etree._Element:
    """RFC 4287's required elements, checked on the XML itself."""
    root = etree.fromstring(body)
    assert root.tag == f"{A}feed"
    base = config.newsletter.base_url
    for tag in ("id", "title", "updated"):
        assert len(root.findall(f"{A}{tag}")) == 1, tag
    assert root.findtext(f"{A}id") == f"{base}/feed.xml"
    links = {(lk.get("rel"), lk.get("href")) for lk in root.findall(f"{A}link")}
    assert ("self", f"{base}/feed.xml") in links and ("alternate", f"{base}/archive") in links
    assert root.findtext(f"{A}author/{A}name")
    stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
    assert stamp.match(root.findtext(f"{A}updated") or "")
    ids = []
    for entry in root.findall(f"{A}entry"):
        for tag in ("id", "title", "updated"):
            assert len(entry.findall(f"{A}{tag}")) == 1, tag
        assert stamp.match(entry.findtext(f"{A}updated") or "")
        [alternate] = [lk for lk in entry.findall(f"{A}link") if lk.get("rel") == "alternate"]
        assert (alternate.get("href") or "").startswith(f"{base}/view/")
        [content] = entry.findall(f"{A}content")
        assert content.get("type") == "html" and content.text
        ids.append(entry.findtext(f"{A}id"))
    assert len(set(ids)) == len(ids)
    return root


def test_feed_is_valid_atom_with_the_web_versions(project: Config, sent: Sent) -> None:
    config = project
    with Threaded(config) as server, httpx.Client(timeout=10) as http:
        got = http.get(server.url("/feed.xml"))
        assert got.status_code == 200
        assert got.headers["content-type"] == "application/atom+xml; charset=utf-8"
        root = structurally_valid(got.content, config)
        parsed = feedparser.parse(got.content)
        assert not parsed.bozo, parsed.bozo_exception
        assert parsed.version == "atom10"
        assert parsed.feed.title == config.newsletter.name
        assert [e.title for e in parsed.entries] == [sent.subjects[""], sent.subjects[TOKYO]]
        view = f"{config.newsletter.base_url}/view/2026-02-18"
        assert [e.link for e in parsed.entries] == [view, f"{view}?zone=Asia/Tokyo"]
        assert [e.id for e in parsed.entries] == [
            "tag:127.0.0.1,2026-02-18:edition", "tag:127.0.0.1,2026-02-18:edition/Asia/Tokyo"]
        # Updated is when the edition froze (sending began), not when it was fetched.
        assert parsed.entries[0].updated_parsed[:5] == NOW.timetuple()[:5]
        assert parsed.entries[1].updated_parsed[:5] == (NOW + timedelta(hours=1)).timetuple()[:5]
        assert root.findtext(f"{A}updated") == "2026-02-18T08:00:00Z"
        # The content is the page its link serves, byte for byte.
        for entry in root.findall(f"{A}entry"):
            href = entry.find(f"{A}link").get("href")  # type: ignore[union-attr]
            view = http.get(local(config, server, href or ""))
            assert view.status_code == 200
            assert entry.findtext(f"{A}content") == view.text


def test_empty_archive_is_a_friendly_page_and_a_valid_empty_feed(tmp_path: Path) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    config = config_mod.load(_write_project(root, ["http://127.0.0.1:9/none.xml"], 2525))
    with Threaded(config) as server, httpx.Client(timeout=10) as http:
        page = http.get(server.url("/archive"))
        assert page.status_code == 200 and "No editions yet" in page.text
        got = http.get(server.url("/feed.xml"))
        assert got.status_code == 200 and "last-modified" not in got.headers
        root_el = structurally_valid(got.content, config)
        assert root_el.findall(f"{A}entry") == []
        parsed = feedparser.parse(got.content)
        assert not parsed.bozo and parsed.version == "atom10" and parsed.entries == []


# -- no personal data ---------------------------------------------------------------------

def test_no_subscriber_data_in_the_archive_or_the_feed(project: Config, sent: Sent) -> None:
    # The run really mailed the hostile subscriber, name and address (else this proves nothing).
    mine = [m for m in sent.mailed if HOSTILE_EMAIL.encode() in m]
    assert mine and b"/unsubscribe/" in mine[0]
    config = project
    with Threaded(config) as server, httpx.Client(timeout=10) as http:
        bodies = {path: http.get(server.url(path)).text for path in (
            "/archive", "/feed.xml", f"/view/{DAY.isoformat()}",
            f"/view/{DAY.isoformat()}?zone={TOKYO}")}
    for path, body in bodies.items():
        assert len(body) > 1000, path
        for personal in PERSONAL:
            assert personal not in body, (path, personal)
        assert not re.search(r"[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{20,}", body), path  # a token
    # The neutral values are there instead (in the feed, escaped as content).
    assert f"{config.newsletter.base_url}/unsubscribe" in bodies["/feed.xml"]
    assert "a reader" in bodies["/feed.xml"]


def test_hostile_subject_is_escaped_everywhere(project: Config) -> None:
    config = project
    evil = ("<script>alert('subject')</script> & \"quotes\" ]]> <!-- \x0b\x1b -->"
            "</title><entry>")
    save(config, DAY + timedelta(days=1), evil,
         html='<p>story</p><script>alert("body")</script>]]>')
    with Threaded(config) as server, httpx.Client(timeout=10) as http:
        page = http.get(server.url("/archive")).text
        got = http.get(server.url("/feed.xml")).content
    assert "<script>alert('subject')" not in page and "</title><entry>" not in page
    assert "&lt;script&gt;alert(&#x27;subject&#x27;)&lt;/script&gt; &amp; &quot;quotes" in page
    assert b"<script" not in got and b"</title><entry>" not in got
    root = structurally_valid(got, config)
    entries = root.findall(f"{A}entry")
    assert len(entries) == 3
    # Round trip: what a reader's feed reader shows is the subject itself, less what
    # XML 1.0 cannot carry.
    assert entries[0].findtext(f"{A}title") == evil.replace("\x0b", "").replace("\x1b", "")
    assert entries[0].findtext(f"{A}content") == '<p>story</p><script>alert("body")</script>]]>'
    parsed = feedparser.parse(got)
    assert not parsed.bozo, parsed.bozo_exception
    assert len(parsed.entries) == 3


@functools.cache
def demo_config() -> Config:
    return config_mod.load(REPO / "config.toml")


@settings(max_examples=200, deadline=None)
@given(subject=st.text())
def test_any_text_makes_a_well_formed_feed(subject: str) -> None:
    # The web version fills personal placeholders with neutral words by design; render
    # strips them from every outside text first (tests/test_hostile_mail.py), so an
    # edition never holds one that was not digest's own.
    assume(TOKEN_MARK not in subject)
    edition = archive.Edition(day=DAY, group="", frozen=NOW, primary=True, rendered=Rendered(
        variant="all", subject=subject, preheader=subject, mjml="", html=subject, text=""))
    body = archive.atom(demo_config(), [replace(edition)], NOW)
    root = etree.fromstring(body)
    [entry] = root.findall(f"{A}entry")
    kept = archive._NOT_XML.sub("", subject)
    assert entry.findtext(f"{A}title") == kept
    assert kept in (entry.findtext(f"{A}content") or "") or not kept


# -- conditional GET ----------------------------------------------------------------------

def test_conditional_get_answers_304_until_a_new_edition(project: Config) -> None:
    config = project
    with Threaded(config) as server, httpx.Client(timeout=10) as http:
        url = server.url("/feed.xml")
        first = http.get(url)
        etag, modified = first.headers["etag"], first.headers["last-modified"]
        assert modified == "Wed, 18 Feb 2026 08:00:00 GMT"
        same = http.get(url, headers={"If-None-Match": etag})
        assert same.status_code == 304 and same.content == b""
        assert same.headers["etag"] == etag
        assert http.get(url, headers={"If-None-Match": f'"x", W/{etag}'}).status_code == 304
        assert http.get(url, headers={"If-Modified-Since": modified}).status_code == 304
        assert http.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
        # An ETag that does not match wins over a date that would (RFC 9110).
        assert http.get(url, headers={"If-None-Match": '"other"',
                                      "If-Modified-Since": modified}).status_code == 200
        earlier = "Wed, 18 Feb 2026 07:59:59 GMT"
        assert http.get(url, headers={"If-Modified-Since": earlier}).status_code == 200
        assert http.get(url, headers={"If-Modified-Since": "garbage"}).status_code == 200
        save(config, DAY + timedelta(days=1), "The next day",
             at=NOW + timedelta(days=1))
        changed = http.get(url, headers={"If-None-Match": etag, "If-Modified-Since": modified})
        assert changed.status_code == 200 and changed.headers["etag"] != etag
        assert feedparser.parse(changed.content).entries[0].title == "The next day"


# -- limits -------------------------------------------------------------------------------

def test_limits_still_apply_to_the_archive_and_the_feed(project: Config) -> None:
    path = limits(project.path, header_timeout=1, max_connections=10)
    config = config_mod.load(path)
    with Threaded(config) as server:
        slow = [_connect(server.port, b"GET /feed.xml HTTP/1.1\r\nHost: 127.0.0.1\r\nX-")
                for _ in range(12)]
        try:
            with Dribble(slow):
                # More connections than allowed: the feed is a quick 503, not a queue.
                full = httpx.get(server.url("/feed.xml"), timeout=10)
                assert full.status_code == 503
                got = wait_closed(slow)  # the header deadline drops every one
        finally:
            for s in slow:
                s.close()
        assert all(got[s].startswith(b"HTTP/1.1 408 Request Timeout\r\n") for s in slow)
        assert httpx.get(server.url("/feed.xml"), timeout=10).status_code == 200
        assert httpx.get(server.url("/archive"), timeout=10).status_code == 200

