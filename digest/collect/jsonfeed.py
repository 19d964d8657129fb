"""JSON Feed 1.0/1.1 (https://jsonfeed.org/version/1.1), which feedparser 6 does not
read: its items in feedparser's entry shape, so one code path normalises both."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from digest.collect.charset import decode
from digest.collect.dates import parse_date
from digest.collect.text import collapse
from digest.errors import FeedError


def read_json_feed(body: bytes) -> tuple[str, str, list[Mapping[str, Any]]]:
    """A JSON Feed document as (site, title, entries in feedparser's shape)."""
    try:
        doc = json.loads(decode(body, "application/json; charset=utf-8"))
    except ValueError as e:
        raise FeedError(f"not a feed: could not parse JSON ({e})") from None
    if not isinstance(doc, dict) or not str(doc.get("version", "")).startswith(
            "https://jsonfeed.org/version/"):
        raise FeedError("not a feed: JSON without a JSON Feed version")
    site = str(doc.get("home_page_url") or "")
    feed_author = _json_author(doc)
    items = [i for i in doc.get("items") or () if isinstance(i, dict)]
    return (site, collapse(str(doc.get("title") or "")),
            [_json_entry(item, feed_author) for item in items])


def _json_author(obj: Mapping[str, Any]) -> str:
    authors = obj.get("authors") or ([obj["author"]] if obj.get("author") else [])
    first = authors[0] if authors and isinstance(authors, list) else None
    return str(first.get("name") or "") if isinstance(first, dict) else ""


def _json_entry(item: dict[str, Any], feed_author: str) -> dict[str, Any]:
    """A JSON Feed item in feedparser's entry shape, so one code path normalises both."""
    content_html = item.get("content_html")
    content = ([{"value": str(content_html), "type": "text/html"}] if content_html else
               [{"value": str(item["content_text"]), "type": "text/plain"}]
               if item.get("content_text") else [])
    attachments = [a for a in item.get("attachments") or () if isinstance(a, dict)]
    author = _json_author(item) or feed_author
    return {
        "id": str(item.get("id") or ""),
        "link": str(item.get("url") or item.get("external_url") or ""),
        "title": str(item.get("title") or ""),
        "title_detail": {"type": "text/plain"},
        "summary": str(item.get("summary") or ""),
        "summary_detail": {"type": "text/plain"},
        "content": content,
        "published_parsed": parse_date(str(item.get("date_published") or "")),
        "updated_parsed": parse_date(str(item.get("date_modified") or "")),
        "author_detail": {"name": author} if author else {},
        "tags": [{"term": t} for t in item.get("tags") or () if isinstance(t, str)],
        "media_content": [{"url": str(u), "medium": "image"}
                          for u in (item.get("image"), item.get("banner_image")) if u],
        "enclosures": [{"href": str(a.get("url") or ""), "type": str(a.get("mime_type") or "")}
                       for a in attachments],
    }
