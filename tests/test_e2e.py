"""End to end, as a user runs it: the real `digest` CLI in a subprocess, feeds
from a loopback HTTP server, mail into a real aiosmtpd server, a real SQLite file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.peers import FeedServer, SmtpServer

REPO = Path(__file__).resolve().parents[1]
FEEDS = ["harbour-herald.xml", "northern-ledger.atom", "civic-wire.rdf", "byte-street.xml",
         "meridian-science.atom"]
ACTIVE = {"ada@example.org", "grace@example.com", "kenji@example.net"}


def make_project(tmp_path: Path, feed_server: FeedServer, smtp_port: int) -> Path:
    text = (REPO / "config.toml").read_text()
    for name in FEEDS:
        text = text.replace(f'url = "feeds/{name}"', f'url = "{feed_server.url(name)}"')
    text = text.replace("port = 2525", f"port = {smtp_port}")
    text = text.replace('templates = "templates"', f'templates = "{REPO / "templates"}"')
    (tmp_path / "config.toml").write_text(text)
    shutil.copytree(REPO / "subscribers", tmp_path / "subscribers")
    return tmp_path / "config.toml"


def digest(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "digest", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120, cwd=config.parent)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_collect_send_twice_mails_everyone_once(tmp_path: Path, feed_server: FeedServer,
                                                smtp_server: SmtpServer) -> None:
    config = make_project(tmp_path, feed_server, smtp_server.port)

    collected = digest(config, "collect", "--json")
    assert collected.returncode == 0, collected.stderr
    rows = json.loads(collected.stdout)
    assert [r["status"] for r in rows] == ["ok"] * 5
    assert set(rows[0]) == {"feed", "url", "status", "items", "new", "error"}
    assert all(r["items"] > 0 and r["new"] == r["items"] for r in rows)
    assert {r["url"] for r in rows} == {feed_server.url(n) for n in FEEDS}

    ranked = digest(config, "rank", "--json")
    assert ranked.returncode == 0, ranked.stderr
    stories = json.loads(ranked.stdout)
    assert stories
    sources = {r["feed"] for r in rows}
    for story in stories:  # every story and every article in it, not only the first
        assert story["sections"] and story["articles"], story
        for a in story["articles"]:
            assert a["url"].startswith("http") and a["title"] and a["source"] in sources, a

    first = digest(config, "send")
    assert first.returncode == 0, first.stderr
    assert "sent 3 of 3" in first.stdout
    assert len(smtp_server.received) == 3
    assert {r for m in smtp_server.received for r in m.rcpt_tos} == ACTIVE
    for received in smtp_server.received:
        msg = received.message
        assert msg.get_content_type() == "multipart/alternative"
        parts = [p.get_content_type() for p in msg.iter_parts()]
        assert parts == ["text/plain", "text/html"]
        html = msg.get_body(("html",))
        assert html is not None
        assert len(html.as_bytes()) < 102 * 1024
        assert "The Daily Selection" in html.get_content()
        assert msg["List-Unsubscribe"].startswith("<http")
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert msg["Message-ID"] and msg["Date"] and msg["List-Id"]

    second = digest(config, "send")
    assert second.returncode == 0, second.stderr
    assert "sent 0 of 3" in second.stdout and "3 already sent earlier" in second.stdout
    assert len(smtp_server.received) == 3


def test_run_once_and_render(tmp_path: Path, feed_server: FeedServer,
                             smtp_server: SmtpServer) -> None:
    config = make_project(tmp_path, feed_server, smtp_server.port)
    run = digest(config, "run", "--once")
    assert run.returncode == 0, run.stderr
    assert "collected 5 feeds: 5 ok" in run.stdout
    assert len(smtp_server.received) == 3

    out = tmp_path / "out"
    rendered = digest(config, "render", "--out", str(out), "--subscriber", "ada@example.org")
    assert rendered.returncode == 0, rendered.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == ["digest.eml", "digest.html", "digest.mjml", "digest.txt"]
    assert "<mjml" in (out / "digest.mjml").read_text()
    assert "Ada" in (out / "digest.html").read_text()

    again = digest(config, "run", "--once")
    assert again.returncode == 0, again.stderr
    assert len(smtp_server.received) == 3  # the journal holds: nobody twice


def test_send_with_server_down_is_one_clear_line(tmp_path: Path, feed_server: FeedServer) -> None:
    from tests.peers import free_port

    config = make_project(tmp_path, feed_server, free_port())
    digest(config, "collect")
    proc = digest(config, "send")
    assert proc.returncode != 0
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "connection refused" in errors[0].lower(), proc.stderr
