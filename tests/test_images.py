"""A story's picture: a real image, absolute, https in the email, never a pixel,
an icon, an avatar or an emoji, and no empty box where there is none.

Items are built from real corpus markup (the feed file is named beside each):
both readers (lxml and feedparser) must choose alike.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from digest import config as config_mod
from digest.collect.parse import parse_feed
from digest.config import Config
from digest.models import Article, Feed, Section, Selection, Story
from digest.render.variant import render_variant
from tests.conftest import CORPUS

REPO = Path(__file__).resolve().parent.parent
REALDAY = REPO / "tests" / "data" / "realday" / "feeds"
NOW = datetime(2026, 2, 18, 7, tzinfo=UTC)
SERVED = "http://127.0.0.1:8080/feed.xml"  # where a loopback server would serve it from


def rss(item: str, *, site: str = "https://blog.example.org/") -> bytes:
    return (f'<?xml version="1.0"?><rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"'
            f' xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
            f"<title>T</title><link>{site}</link><item><title>One</title>{item}</item>"
            f"</channel></rss>").encode()


def image(item: str, reader: str, *, site: str = "https://blog.example.org/",
          base: str = SERVED) -> str | None:
    [article] = parse_feed(rss(item, site=site), Feed(url=base, name="T"), now=NOW,
                           base_url=base, reader=reader)  # type: ignore[arg-type]
    return article.image


READERS = pytest.mark.parametrize("reader", ["auto", "feedparser"])
BIG = '<img src="https://blog.example.org/big.jpg" width="800" height="450">'


@READERS
@pytest.mark.parametrize(("item", "expected"), [
    # 2b665d9e4b6bb33a (Blogger): a 72 px thumbnail, then the real picture in the text
    ('<link>https://blog.example.org/a</link><media:thumbnail url="https://blogger.'
     'googleusercontent.com/img/a/AVvX=s72-w400-h243-c" height="72" width="72"/>'
     f"<description><![CDATA[<p>Text</p>{BIG}]]></description>",
     "https://blog.example.org/big.jpg"),
    # 49ea3c9d52b08d80 (WordPress.com): the author's Gravatar as media:content
    ('<link>https://blog.example.org/a</link><media:content url="https://0.gravatar.com/'
     'avatar/6540c9e4?s=96&#38;d=identicon&#38;r=G" medium="image"/>'
     f"<description><![CDATA[{BIG}]]></description>", "https://blog.example.org/big.jpg"),
    # 5ed469fb5a05348d (WordPress): an emoji first in the text
    ('<link>https://blog.example.org/a</link><description><![CDATA[<p>Back <img src="https://'
     's.w.org/images/core/emoji/15.0.3/72x72/21a9.png" alt="↩" class="wp-smiley" '
     f'style="height: 1em;" /></p>{BIG}]]></description>', "https://blog.example.org/big.jpg"),
    # tracking pixels: declared 1x1, FeedBurner's ~r, WordPress stats, Medium's stat
    ('<link>https://blog.example.org/a</link><description><![CDATA['
     '<img src="https://blog.example.org/t.gif" width="1" height="1">'
     '<img src="https://feeds.feedburner.com/~r/Blog/~4/abc">'
     '<img src="https://pixel.wp.com/b.gif?host=x">'
     '<img src="https://medium.com/_/stat?event=post.clientViewed">'
     '<img src="https://blog.example.org/spacer.gif">'
     f"{BIG}]]></description>", "https://blog.example.org/big.jpg"),
    # e8203fee50c570d8: a display ad; jtemporal.com's "keep reading" button (6d28cf55)
    ('<link>https://blog.example.org/a</link><description><![CDATA['
     '<img width="300" height="600" src="//a.impactradius-go.com/display-ad/7490-1161409">'
     '<img src="/images/keep_reading.png">'
     f"{BIG}]]></description>", "https://blog.example.org/big.jpg"),
    # declared under 100 px either way, in CSS pixels or plain
    ('<link>https://blog.example.org/a</link><media:content url="https://blog.example.org/'
     'icon.jpg" medium="image" width="64" height="64"/><description><![CDATA['
     '<img src="https://blog.example.org/small.jpg" width="90px" height="300">'
     f"{BIG}]]></description>", "https://blog.example.org/big.jpg"),
    # nothing but junk: no image at all (and no broken box later)
    ('<link>https://blog.example.org/a</link><description><![CDATA[<img src="https://'
     'blog.example.org/pixel.gif">]]></description>', None),
    # NPR (7be307059415227d): a script's src="undefined", which would resolve against
    # the item's page into a URL that is no picture
    ('<link>https://blog.example.org/a</link><description><![CDATA['
     '<img src="undefined" width="1200"><img src=" null ">'
     f"{BIG}]]></description>", "https://blog.example.org/big.jpg"),
    # a picture of a phone called Pixel is a picture
    ('<link>https://blog.example.org/a</link><media:content url="https://blog.example.org/'
     'img/pixel-8-pro-review.jpg" medium="image" width="1200" height="800"/>',
     "https://blog.example.org/img/pixel-8-pro-review.jpg"),
])
def test_never_a_pixel_an_icon_or_an_avatar(item: str, expected: str | None,
                                            reader: str) -> None:
    assert image(item, reader) == expected


@READERS
def test_relative_images_resolve_against_the_items_page(reader: str) -> None:
    # tests/data/realday/feeds/kittenlabs-hugo.xml (Hugo): <img src="featured-...jpg">
    # is relative to the post's page, not to where the feed was fetched from.
    item = ('<link>https://blog.example.org/posts/kiosk/</link><description>'
            '&lt;img src="featured-signage.jpg" width="70%"&gt;</description>')
    assert image(item, reader) == "https://blog.example.org/posts/kiosk/featured-signage.jpg"
    media = ('<link>https://blog.example.org/posts/kiosk/</link>'
             '<media:content url="/img/cover.jpg" medium="image"/>')
    assert image(media, reader) == "https://blog.example.org/img/cover.jpg"


@READERS
def test_a_link_blogs_relative_images_mean_the_blog(reader: str) -> None:
    # The item links to another site; its own relative markup still means the blog.
    item = ('<link>https://elsewhere.example.com/story</link><description>'
            '&lt;img src="/img/shot.png"&gt;</description>')
    assert image(item, reader, base="https://blog.example.org/feed.xml") == (
        "https://blog.example.org/img/shot.png")


def test_the_real_hugo_feed_points_at_its_pages() -> None:
    path = REALDAY / "kittenlabs-hugo.xml"
    articles = parse_feed(path.read_bytes(), Feed(url=SERVED, name="KittenLabs"), now=NOW,
                          base_url=SERVED)
    kiosk = next(a for a in articles if a.url == "https://kittenlabs.de/anotterkiosk/")
    assert kiosk.image == "https://kittenlabs.de/anotterkiosk/featured-digital-signage.jpg"
    assert not any((a.image or "").startswith("http://127.0.0.1") for a in articles)


JUNK = re.compile(r"gravatar|/emoji/|/~r/|pixel\.wp|/_/stat|display-ad|\.svg(?:[?#]|$)|=s72-", re.I)


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus missing at {CORPUS}")
def test_no_junk_image_is_chosen_anywhere_in_the_corpus() -> None:
    chosen: list[tuple[str, str]] = []
    for path in sorted(CORPUS.iterdir()):
        url = f"https://feeds.example.org/{path.name}"
        chosen += [(a.url, a.image) for a in parse_feed(
            path.read_bytes(), Feed(url=url, name="x"), now=NOW, base_url=url) if a.image]
    assert len(chosen) > 500
    assert [img for _, img in chosen if JUNK.search(img)] == []
    assert [img for _, img in chosen if img.rsplit("/", 1)[-1] in ("undefined", "null")] == []
    # Fetched from elsewhere than the site (as from a cache or the test server), the
    # images still point at the site: only an item whose own link is relative (a Hugo
    # site, 4059f23db954f1b5) resolves against the fetch address, as its link does.
    fetched = "https://feeds.example.org/"
    assert [img for page, img in chosen
            if img.startswith(fetched) and not page.startswith(fetched)] == []


# -- in the email ----------------------------------------------------------------------

@pytest.fixture
def cfg() -> Config:
    return config_mod.load(REPO / "config.toml")


def story(i: int, image: str | None) -> Story:
    return Story(Article(feed_url="https://x.example/feed", source="X", guid=f"g{i}",
                         url=f"https://x.example/{i}", title=f"Headline {i}",
                         summary="Summary.", published=NOW, image=image))


def test_only_https_images_reach_the_email_and_no_empty_boxes(cfg: Config) -> None:
    sel = Selection(day=date(2026, 2, 18), sections=(Section("Top", (
        story(0, "http://x.example/lead.jpg"), story(1, "https://x.example/one.jpg"),
        story(2, "http://x.example/two.jpg"), story(3, None))),))
    r = render_variant(sel, cfg, variant="all", now=NOW)
    srcs = re.findall(r'<img[^>]*src="([^"]*)"', r.html)
    assert srcs == ["https://x.example/one.jpg"]
    assert "http://x.example" not in r.html + r.mjml
    # a card without a picture has one full-width column, not an empty thumbnail one
    assert r.mjml.count('css-class="ds-thumb"') == 1
