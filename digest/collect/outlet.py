"""An outlet's name: what the reader sees as the source of a story.

A minimal version for `digest feeds add` and `import`; the full naming (taglines
trimmed, and the rest of issue 18's outlet rules) replaces this module.
"""

from __future__ import annotations

from urllib.parse import urlsplit


def outlet_name(title: str, site_url: str, feed_url: str) -> str:
    """The feed's own title, else the site's host (without ``www.``), else the feed's."""
    name = " ".join(title.split())
    if name:
        return name
    for url in (site_url, feed_url):
        host = urlsplit(url).hostname or ""
        if host:
            return host.removeprefix("www.")
    return feed_url.strip()
