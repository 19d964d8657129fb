"""Parsing: every format, odd encodings, dates, links, images, hygiene.

Each format is checked through ``parse_feed`` (the path collect uses) and, where
feedparser reads the format, against feedparser's own reading of the same bytes.
"""

from __future__ import annotations

import codecs
from datetime import UTC, datetime

import feedparser
import pytest

from digest.collect.charset import detect
from digest.collect.dates import parse_date
from digest.collect.parse import canonical_url, parse_feed, read_entries, sanitize, shorten
from digest.collect.xml import read_xml
from digest.errors import FeedError
from digest.models import Article, Feed

NOW = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
FEED = Feed("https://site.example/feed", "Site")
BASE = "https://site.example/feed"


def parse(body: bytes, **kw: object) -> list[Article]:
    return parse_feed(body, FEED, now=NOW, base_url=BASE, **kw)  # type: ignore[arg-type]


RSS091 = b"""<?xml version="1.0" encoding="ISO-8859-1"?>
<rss version="0.91"><channel><title>Old</title><link>https://old.example/</link>
<description>d</description><language>en</language>
<item><title>First old item</title><link>https://old.example/1</link>
<description>Plain &lt;b&gt;old&lt;/b&gt; text</description></item>
<item><title>Second old item</title><link>https://old.example/2</link></item>
</channel></rss>"""

RSS10 = b"""<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
  xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel rdf:about="https://rdf.example/"><title>RDF</title><link>https://rdf.example/</link>
<description>d</description></channel>
<item rdf:about="https://rdf.example/a"><title>RDF item</title><link>https://rdf.example/a</link>
<dc:date>2026-11-26T08:00:00+02:00</dc:date><dc:creator>Ida Rdf</dc:creator>
<dc:subject>Science</dc:subject><description>About RDF.</description></item>
</rdf:RDF>"""

ATOM03 = b"""<?xml version="1.0" encoding="utf-8"?>
<feed version="0.3" xmlns="http://purl.org/atom/ns#"><title>Atom 0.3</title>
<link rel="alternate" type="text/html" href="https://a03.example/"/>
<entry><title>Old Atom</title><link rel="alternate" type="text/html" href="https://a03.example/e1"/>
<id>tag:a03.example,2005:1</id><issued>2026-11-25T10:00:00Z</issued>
<modified>2026-11-25T11:00:00Z</modified>
<content type="text/html" mode="escaped"
>&lt;p&gt;Escaped &lt;em&gt;HTML&lt;/em&gt;&lt;/p&gt;</content>
</entry></feed>"""

ATOM10 = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:media="http://search.yahoo.com/mrss/"
      xml:base="https://atom.example/blog/">
<title>Atom</title><link href="https://atom.example/"/><id>urn:x</id>
<updated>2026-11-27T09:00:00Z</updated>
<entry><title type="html">Caf&amp;eacute; &lt;b&gt;news&lt;/b&gt;</title>
<link rel="alternate" href="posts/1?utm_source=atom&amp;id=3"/>
<link rel="enclosure" type="image/png" href="/img/enc.png"/>
<id>urn:1</id><published>2026-11-27T08:30:00-05:00</published>
<updated>2026-11-27T09:00:00Z</updated>
<author><name>Ann Atom</name><email>ann@atom.example</email></author>
<category term="tech"/><category term="tech"/><category label="Space" term="space"/>
<content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><p>See <a href="../about">about</a>
<img src="pic.jpg"/></p><script>alert(1)</script><p onclick="x()">Tail</p></div></content>
</entry>
<entry><title>Text title with &lt;angle&gt;</title><link href="https://atom.example/2"/>
<id>urn:2</id><updated>2026-11-20</updated><summary>Only a summary.</summary>
<media:thumbnail url="https://img.atom.example/t.jpg"/></entry>
</feed>"""

JSON11 = b"""{"version": "https://jsonfeed.org/version/1.1", "title": "J",
  "home_page_url": "https://j.example/", "authors": [{"name": "Feed Author"}],
  "items": [
    {"id": "1", "url": "/1?fbclid=abc", "title": "First",
     "content_html": "<p onclick='x()'>Hi <script>bad()</script>there</p>",
     "date_published": "2026-11-27T10:00:00+01:00", "tags": ["a", "b"],
     "authors": [{"name": "Ann"}], "image": "https://img.j.example/1.jpg"},
    {"id": "2", "content_text": "No title, no url, only text.", "date_modified": "2026-11-26"},
    {"id": "3", "external_url": "https://elsewhere.example/x", "title": "Linked",
     "attachments": [{"url": "https://img.j.example/a.png", "mime_type": "image/png"}]}]}"""

JSON10 = b"""{"version": "https://jsonfeed.org/version/1", "title": "J1",
  "items": [{"id": "a", "url": "https://j1.example/a", "title": "One",
             "author": {"name": "Old Author"}, "summary": "Short.",
             "content_html": "<p>Long body</p>", "date_published": "2026-11-25T00:00:00Z"}]}"""


# -- formats -----------------------------------------------------------------------

@pytest.mark.parametrize(("body", "version"), [
    (RSS091, "rss091u"), (RSS10, "rss10"), (ATOM03, "atom03"), (ATOM10, "atom10"),
])
def test_fast_reader_counts_like_feedparser(body: bytes, version: str) -> None:
    parsed = read_xml(body)
    reference = feedparser.parse(body)
    assert parsed is not None and parsed.version == version == reference.version
    assert len(parsed.entries) == len(reference.entries)


def test_rss091_and_rss10() -> None:
    first, second = parse(RSS091)
    assert (first.title, first.url, first.summary) == (
        "First old item", "https://old.example/1", "Plain old text")
    assert second.published == NOW  # no date: first seen
    (rdf,) = parse(RSS10)
    assert (rdf.guid, rdf.url, rdf.author, rdf.categories) == (
        "https://rdf.example/a", "https://rdf.example/a", "Ida Rdf", ("Science",))
    assert rdf.published == datetime(2026, 11, 26, 6, 0, tzinfo=UTC)


def test_atom03_and_atom10() -> None:
    (old,) = parse(ATOM03)
    assert old.content_html == "<p>Escaped <em>HTML</em></p>"
    assert old.published == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    one, two = parse(ATOM10)
    assert one.title == "Café news"
    # xml:base on the feed, then the entry's relative link; tracking parameter gone.
    assert one.url == "https://atom.example/blog/posts/1?id=3"
    assert 'href="https://atom.example/about"' in one.content_html
    assert "<script" not in one.content_html and "onclick" not in one.content_html
    assert "alert" not in one.content_html
    assert one.published == datetime(2026, 11, 27, 13, 30, tzinfo=UTC)
    assert (one.author, one.categories) == ("Ann Atom", ("tech", "space"))
    assert one.image == "https://atom.example/img/enc.png"  # the image enclosure
    assert two.title == "Text title with <angle>"  # type="text": not markup
    assert two.image == "https://img.atom.example/t.jpg"
    assert two.summary == "Only a summary."
    assert two.published == datetime(2026, 11, 20, tzinfo=UTC)  # a date without a time


def test_json_feed_11_and_10() -> None:
    first, textonly, linked = parse(JSON11)
    assert (first.url, first.title, first.summary) == ("https://site.example/1", "First",
                                                       "Hi there")
    assert first.content_html == "<p>Hi there</p>"
    assert first.published == datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    assert (first.author, first.categories, first.image) == (
        "Ann", ("a", "b"), "https://img.j.example/1.jpg")
    assert textonly.title == "No title, no url, only text." and textonly.author == "Feed Author"
    assert textonly.published == datetime(2026, 11, 26, tzinfo=UTC)
    assert (linked.url, linked.image) == ("https://elsewhere.example/x",
                                          "https://img.j.example/a.png")
    (one,) = parse(JSON10)
    assert (one.author, one.summary, one.content_html) == ("Old Author", "Short.",
                                                           "<p>Long body</p>")


def test_not_json_feed_and_not_a_feed() -> None:
    with pytest.raises(FeedError, match="JSON without a JSON Feed version"):
        parse(b'{"hello": "world"}')
    with pytest.raises(FeedError, match="document is empty"):
        parse(b"   ")
    with pytest.raises(FeedError, match="not a feed: could not parse XML"):
        parse(b"<<<>>> this is not xml at all \x00\x01")


def test_html_page_names_the_advertised_feed() -> None:
    page = b"""<!DOCTYPE html><html><head>
    <link rel="alternate" type="application/atom+xml" href="/atom.xml"></head>
    <body><p>Hello</p></body></html>"""
    with pytest.raises(FeedError) as e:
        parse(page)
    assert e.value.message == ("not a feed: the server sent an HTML page "
                               "(it advertises a feed at https://site.example/atom.xml)")
    with pytest.raises(FeedError, match=r"^not a feed: the server sent an HTML page$"):
        parse(b"<html><body>no feed here</body></html>")


# -- encodings ---------------------------------------------------------------------

ITEM = "<item><title>Café – naïve</title><link>https://e.example/1</link></item>"


def doc(declared: str | None) -> str:
    decl = f'<?xml version="1.0" encoding="{declared}"?>' if declared else ""
    return f"{decl}<rss version=\"2.0\"><channel><title>E</title>{ITEM}</channel></rss>"


@pytest.mark.parametrize(("body", "content_type"), [
    (codecs.BOM_UTF8 + b"\r\n  " + doc("utf-8").encode(), None),  # BOM, then whitespace
    (doc("utf-16").encode("utf-16"), None),  # UTF-16 with its BOM
    (doc(None).encode("utf-16-le"), None),  # UTF-16 without BOM or declaration
    (doc("utf-8").encode("cp1252"), None),  # says UTF-8, is Windows-1252
    (doc("iso-8859-1").encode("utf-8"), None),  # says Latin-1, is UTF-8
    (doc(None).encode("utf-8"), "text/xml; charset=iso-8859-1"),  # the header lies
    (doc("windows-1252").encode("cp1252"), "text/xml; charset=utf-8"),  # header lies too
])
def test_encodings_that_lie(body: bytes, content_type: str | None) -> None:
    (a,) = parse(body, content_type=content_type)
    assert a.title == "Café – naïve"


def test_detect_prefers_bom_then_valid_declarations() -> None:
    assert detect(codecs.BOM_UTF16_BE + "<".encode("utf-16-be")) == ("utf-16-be", 2)
    assert detect(b'<?xml version="1.0" encoding="koi8-r"?><a>\xc1</a>')[0] == "koi8-r"
    assert detect(b'<?xml version="1.0" encoding="utf-16"?><a/>')[0] == "utf-8"  # a lie


# -- dates -------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("Thu, 26 Nov 2026 23:30:00 -0500", datetime(2026, 11, 27, 4, 30)),
    ("Thu, 26 Nov 2026 23:30:00 GMT", datetime(2026, 11, 26, 23, 30)),
    ("26 Nov 2026 23:30 EST", datetime(2026, 11, 27, 4, 30)),
    ("Thu, 26 Nov 26 10:00:00 +0000", datetime(2026, 11, 26, 10, 0)),  # 2-digit year
    ("2026-11-26T10:00:00Z", datetime(2026, 11, 26, 10, 0)),
    ("2026-11-26T10:00:00.123+01:00", datetime(2026, 11, 26, 9, 0)),
    ("2026-11-26 10:00:00", datetime(2026, 11, 26, 10, 0)),
    ("2026-11-26", datetime(2026, 11, 26)),
    ("20261126T100000Z", datetime(2026, 11, 26, 10, 0)),
    ("Thursday, November 26, 2026 10:00 AM", datetime(2026, 11, 26, 10, 0)),  # feedparser's
    ("not a date at all", None),  # unknown to all: None, not a crash
    ("Thu, 26 Nov 2026 25:61:00 GMT", None),  # no such time
    ("Mon, 01 Jan 0001 00:00:00 +0000", None),
    ("", None),
])
def test_dates(text: str, expected: datetime | None) -> None:
    assert parse_date(text) == (expected.replace(tzinfo=UTC) if expected else None)


def test_undated_and_future_items_get_first_seen_time() -> None:
    body = b"""<rss version="2.0"><channel><title>T</title>
    <item><title>Undated</title><link>https://d.example/1</link></item>
    <item><title>Future</title><link>https://d.example/2</link>
      <pubDate>Fri, 01 Jan 2100 00:00:00 GMT</pubDate></item>
    <item><title>Epoch</title><link>https://d.example/3</link>
      <pubDate>Thu, 01 Jan 1970 00:00:00 GMT</pubDate></item></channel></rss>"""
    assert [a.published for a in parse(body)] == [NOW, NOW, NOW]


# -- entries -----------------------------------------------------------------------

def test_entries_normalised() -> None:
    body = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"
     xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>
<title>T</title><link>https://site.example/</link>
<item><title>R&amp;amp;D   spending
  <![CDATA[rises]]></title><link>/a/1?utm_source=x&amp;id=7#comments</link>
  <author>jo@site.example (Jo Bloggs)</author>
  <description>&lt;p&gt;Hello &lt;img src="/i.png" width="1" height="1"&gt;
    &lt;img src="/big.jpg"&gt;&lt;/p&gt;</description></item>
<item><description>No title and no link, but words: kept.</description></item>
<item><title>No link</title><guid isPermaLink="false">x-1</guid>
  <pubDate>Thu, 26 Nov 2026 23:30:00 -0500</pubDate></item>
<item><title>Comment</title><link>https://site.example/p#c-1</link><guid>https://site.example/?p=1#c-1</guid></item>
<item><title>Comment</title><link>https://site.example/p#c-2</link><guid>https://site.example/?p=1#c-2</guid></item>
<item><title>Status</title><pubDate>Wed, 25 Nov 2026 10:00:00 GMT</pubDate></item>
<item><title>Status</title><pubDate>Thu, 26 Nov 2026 10:00:00 GMT</pubDate></item>
<item><title>Media</title><link>https://site.example/m</link>
  <media:group><media:content url="https://v.example/v.mp4" type="video/mp4"/>
  <media:content url="https://img.site.example/m.jpg" medium="image"/></media:group>
  <content:encoded><![CDATA[<p>Body <iframe src="https://evil.example"></iframe>
  <a href="javascript:alert(1)">x</a> <b onmouseover="x()">bold</b></p>]]></content:encoded></item>
<item></item>
</channel></rss>"""
    a, words, b, c1, c2, s1, s2, media = parse(body)  # the empty <item/> is dropped
    assert a.title == "R&D spending rises"
    assert a.url == "https://site.example/a/1?id=7"
    assert a.image == "https://site.example/big.jpg"  # the 1x1 pixel is not an image
    assert a.author == "Jo Bloggs"
    assert words.title == "No title and no link, but words: kept."
    assert b.published == datetime(2026, 11, 27, 4, 30, tzinfo=UTC)
    assert b.url == "https://site.example/#item-x-1" and b.guid == "x-1"
    assert (c1.url, c2.url) == ("https://site.example/p#c-1", "https://site.example/p#c-2")
    assert s1.guid != s2.guid and s1.url != s2.url  # same title, different days
    assert media.image == "https://img.site.example/m.jpg"
    assert "iframe" not in media.content_html and "javascript" not in media.content_html
    assert "onmouseover" not in media.content_html and "<b>bold</b>" in media.content_html


def test_fast_path_and_feedparser_agree() -> None:
    for body in (RSS091, RSS10, ATOM03, ATOM10):
        fast = parse(body)
        slow = parse(body, reader="feedparser")
        assert [(a.url, a.title, a.published, a.author) for a in fast] == \
               [(a.url, a.title, a.published, a.author) for a in slow]


def test_malformed_xml_falls_back_to_feedparser() -> None:
    body = b"""<rss version="0.91"><channel><title>Broken & bare</title>
    <item><title>Fish & Chips</title><link>https://m.example/1?a=1&b=2</link></item>
    <item><title>Caf&eacute;&nbsp;news</title><link>https://m.example/2</link></item>
    </channel></rss>"""
    assert read_xml(body) is None  # not well-formed: not the fast path's business
    items = parse(body)
    assert len(items) == len(feedparser.parse(body).entries) == 2
    assert items[0].title == "Fish & Chips"
    assert items[0].url == "https://m.example/1?a=1&b=2"
    assert items[1].title == "Café news"


def test_summary_is_clean_text_cut_at_a_boundary() -> None:
    long_html = "<p>" + "The first sentence is here. " * 40 + "</p><script>x()</script>"
    body = f"""<rss version="2.0"><channel><title>T</title><item><title>L</title>
    <link>https://l.example/1</link><description><![CDATA[{long_html}]]></description>
    </item></channel></rss>""".encode()
    (a,) = parse(body)
    assert a.summary.endswith("here. …") and len(a.summary) <= 302
    assert "<" not in a.summary and "x()" not in a.summary


def test_read_entries_reports_the_site_link() -> None:
    site, entries = read_entries(RSS10)
    assert site == "https://rdf.example/" and len(entries) == 1


@pytest.mark.parametrize(("url", "expected"), [
    ("https://A.example/x?utm_source=rss&utm_medium=feed", "https://a.example/x"),
    ("https://a.example/x?id=3&fbclid=1&gclid=2&mc_cid=3&mc_eid=4", "https://a.example/x?id=3"),
    ("https://a.example/x?msclkid=1&_hsenc=2&yclid=3&igshid=4&q=ok", "https://a.example/x?q=ok"),
    ("https://a.example/x#section-2", "https://a.example/x"),
    ("https://a.example/app#!/story/9", "https://a.example/app#!/story/9"),
    ("https://a.example", "https://a.example/"),
])
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


def test_shorten_cuts_at_sentence_or_word() -> None:
    sentences = "The first sentence is here. " * 20
    cut = shorten(sentences)
    assert len(cut) <= 302 and cut.endswith("here. …")
    words = "word " * 100
    assert shorten(words).endswith("word…") and len(shorten(words)) <= 301
    assert shorten("short.") == "short."


@pytest.mark.parametrize(("base", "html", "expected"), [
    ("https://site.example/blog/feed", '<a href="p/1">x</a>', 'href="https://site.example/blog/p/1"'),
    ("https://site.example/blog/feed", '<img src="//cdn.example/i.png">', 'src="https://cdn.example/i.png"'),
    ("https://site.example/blog/feed", '<a href="../up?q=1#f">x</a>', 'href="https://site.example/up?q=1#f"'),
    # Only an http(s) base resolves: against any other, a relative link is dropped.
    ("file:///srv/feed.xml", '<a href="p/1">x</a>', "<a "),
    ("", '<a href="p/1">x</a>', "<a "),
    ("http://", '<a href="p/1">x</a>', "<a "),  # a base nh3 cannot read
])
def test_sanitize_resolves_relative_urls_against_web_bases_only(
        base: str, html: str, expected: str) -> None:
    out = sanitize(html, base=base)
    assert expected in out
    if expected == "<a ":
        assert "href" not in out  # not kept as it was, nor resolved to file:
    for unsafe in ('<a href="javascript:alert(1)">x</a>', '<a href="data:text/html,x">x</a>'):
        assert "href" not in sanitize(unsafe, base=base)
