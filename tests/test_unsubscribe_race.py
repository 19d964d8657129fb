"""Suppression wins at send time: an unsubscribe that lands after the roster was
read and before the send starts still keeps that subscriber's email back."""

from __future__ import annotations

from pathlib import Path

from digest import config as configuration
from digest import pipeline
from digest.subscribers import admin
from tests.peers import FeedServer, SmtpServer
from tests.test_e2e import make_project


def test_unsubscribe_between_roster_read_and_send_gets_nothing(
        tmp_path: Path, feed_server: FeedServer, smtp_server: SmtpServer) -> None:
    config = configuration.load(make_project(tmp_path, feed_server, smtp_server.port))
    now = pipeline.utcnow()
    store = pipeline.open_store(config)
    try:
        pipeline.collect(config, store, now=now)
        people = pipeline.recipients(config, store, pipeline.load_roster(config))
        assert "ada@example.org" in {p.email for p in people}
        digest = pipeline.prepare(config, store, now=now, subscribers=people)
        # The one-click POST, handled by `digest serve` on its own connection,
        # after this run read its roster.
        other = pipeline.open_store(config)
        try:
            admin.unsubscribe(config, other, "ada@example.org", reason="one-click")
        finally:
            other.close()
        report = pipeline.send_digest(config, store, digest, people, now=now, password=None)
    finally:
        store.close()
    got = {r for m in smtp_server.received for r in m.rcpt_tos}
    assert "ada@example.org" not in got
    assert got == {p.email for p in people} - {"ada@example.org"}
    assert report.sent == len(got) and report.failed == 0
