"""Collect: the day's feeds -> stored `Article`s (and a `FeedResult` per feed).

Fetches every configured feed concurrently and politely (conditional GET, timeouts,
size caps: fetch), reads it (lxml for well-formed XML: xml; feedparser for the rest:
parse; charset, dates and sanitized text: charset, dates, text) in forked parser
workers (pool, worker), and records each feed's health (health). Hands on nothing
but the store: rank reads the articles back from there.
"""
