"""`digest serve` over real HTTP: uvicorn on loopback, tokens from a real message,
mail through aiosmtpd, the real `digest send` afterwards."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from digest import config as configuration
from digest import pipeline
from digest.config import Config
from digest.subscribers import roster as subs
from digest.web import serve
from tests.peers import FeedServer, SmtpServer, free_port
from tests.test_e2e import FEEDS, digest, make_project


class Server:
    """`digest serve`'s app in a real uvicorn, on a real socket, in a thread."""

    def __init__(self, config: Config, port: int) -> None:
        self.sock = serve.listen("127.0.0.1", port)
        self.server = serve.server(config)  # the settings `digest serve` runs with
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(20)
        self.sock.close()


@pytest.fixture
def project(tmp_path: Path, feed_server: FeedServer, smtp_server: SmtpServer) -> Iterator[Path]:
    config = make_project(tmp_path, feed_server, smtp_server.port)
    # Unsubscribe links must point at the `digest serve` this test starts.
    config.write_text(config.read_text().replace(
        'base_url = "http://127.0.0.1:8026"', f'base_url = "http://127.0.0.1:{free_port()}"'))
    yield config


def cli(config: Path, *args: str) -> Result:
    """The CLI in this process (click's runner): quicker than a subprocess."""
    from digest.cli import cli as main

    return CliRunner().invoke(main, ["--config", str(config), *args], catch_exceptions=False)


def collected(config_path: Path) -> Config:
    config = configuration.load(config_path)
    store = pipeline.open_store(config)
    try:
        results = pipeline.collect(config, store, now=pipeline.utcnow())
    finally:
        store.close()
    assert [r.status for r in results] == ["ok"] * len(FEEDS)
    return config


def base_port(config: Config) -> int:
    return int(config.newsletter.base_url.rsplit(":", 1)[1])


def unsubscribe_url(config: Config, email: str) -> str:
    """The https link from the List-Unsubscribe header of the message `email` would get."""
    store = pipeline.open_store(config)
    try:
        copy = pipeline.copy_for(config, store, now=pipeline.utcnow(), email=email)
    finally:
        store.close()
    assert copy is not None
    msg = copy.message
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    urls = re.findall(r"<([^>]+)>", str(msg["List-Unsubscribe"]))
    assert urls[1].startswith("mailto:")
    assert urls[0] in copy.html and urls[0] in copy.text  # the footer link is the same one
    return urls[0]


def mailed_unsubscribe_url(data: bytes) -> str:
    """The https link of the List-Unsubscribe header in the bytes an SMTP server
    received: what a mailbox provider POSTs to, read without the email package."""
    head = data.split(b"\r\n\r\n", 1)[0]
    unfolded = re.sub(rb"\r\n[ \t]+", b" ", head).decode("ascii")
    fields = [line for line in unfolded.split("\r\n") if line.startswith("List-Unsubscribe:")]
    assert len(fields) == 1, fields
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in unfolded.split("\r\n")
    urls = re.findall(r"<([^>]+)>", fields[0])
    assert urls[1].startswith("mailto:")
    return urls[0]


def test_one_click_unsubscribe_end_to_end(project: Path, smtp_server: SmtpServer) -> None:
    config = collected(project)
    # The link is taken from what `digest send` put on the wire to Ada, nothing else.
    first = digest(project, "send", "--to", "ada@example.org")
    assert first.returncode == 0 and "sent 1 of 1" in first.stdout, first.stderr
    assert smtp_server.received[-1].rcpt_tos == ["ada@example.org"]
    url = mailed_unsubscribe_url(smtp_server.received[-1].data)
    assert url.startswith(f"{config.newsletter.base_url}/unsubscribe/")
    assert url == unsubscribe_url(config, "ada@example.org")  # the footer's link is this one
    file = project.parent / "subscribers" / "subscribers.toml"
    before = file.read_text()

    with Server(config, base_port(config)), httpx.Client(timeout=10) as http:
        # A link scanner's GET: a confirmation page with a button, and nothing else happens.
        page = http.get(url)
        assert page.status_code == 200
        assert '<button type="submit" id="unsubscribe">Unsubscribe</button>' in page.text
        assert '<form method="post" action="">' in page.text
        assert "ada@example.org" in page.text
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["x-frame-options"] == "DENY"
        assert http.head(url).status_code == 200
        assert _suppressed(config) == set() and file.read_text() == before

        # The mailbox provider's RFC 8058 one-click POST.
        done = http.post(url, content=b"List-Unsubscribe=One-Click",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert done.status_code == 200 and "gets no more emails" in done.text
        assert _suppressed(config) == {"ada@example.org"}
        after = file.read_text()
        # Only Ada's status line changed in the file, byte for byte.
        assert after == before.replace(
            'email = "ada@example.org"\nname = "Ada Lovelace"\ntopics = ["tech", "science"]\n'
            'timezone = "Europe/London"\nstatus = "active"',
            'email = "ada@example.org"\nname = "Ada Lovelace"\ntopics = ["tech", "science"]\n'
            'timezone = "Europe/London"\nstatus = "unsubscribed"')
        assert after != before

        # A replay (the provider retries, or the user presses the button again).
        again = http.post(url, files={"List-Unsubscribe": (None, "One-Click")})  # multipart
        assert again.status_code == 200 and "gets no more emails" in again.text
        assert file.read_text() == after and _suppressed(config) == {"ada@example.org"}
        assert "is unsubscribed" in http.get(url).text

        # Forged and garbled tokens: one page for all, saying nothing about anyone.
        token = url.rsplit("/", 1)[1]
        payload, mac = token.split(".")
        grace = subs.normalise_email("grace@example.com")
        from digest.mail import tokens

        moved = tokens.make("test-secret", grace, "daily.example.org").split(".")[0]
        forged = tokens.make("guessed-secret", grace, "daily.example.org")
        bad_pages = set()
        for bad in (f"{moved}.{mac}", forged, f"{payload}.{mac[:-3]}", "x", "a.b"):
            for method in ("GET", "POST"):
                r = http.request(method, f"{config.newsletter.base_url}/unsubscribe/{bad}",
                                 content=b"List-Unsubscribe=One-Click")
                assert r.status_code == 400, (method, bad)
                assert "grace@" not in r.text and "ada@" not in r.text
                assert len(bad) < 4 or bad not in r.text
                bad_pages.add(r.text)
        assert len(bad_pages) == 1  # nothing tells one failure from another
        assert _suppressed(config) == {"ada@example.org"}

    # The next `digest send` skips Ada; the two other active subscribers get theirs.
    sent = digest(project, "send")
    assert sent.returncode == 0, sent.stderr
    assert "sent 2 of 2" in sent.stdout
    assert {r for m in smtp_server.received[1:] for r in m.rcpt_tos} == {"grace@example.com",
                                                                         "kenji@example.net"}
    # --to is no way around it either.
    forced = digest(project, "send", "--to", "Ada@Example.org")
    assert forced.returncode != 0
    assert "ada@example.org unsubscribed on" in forced.stderr and len(smtp_server.received) == 3


def test_suppression_wins_over_a_file_until_resubscribe(project: Path,
                                                       smtp_server: SmtpServer) -> None:
    config = collected(project)
    url = unsubscribe_url(config, "grace@example.com")
    with Server(config, base_port(config)), httpx.Client(timeout=10) as http:
        # The confirmation page's own button (a plain form POST).
        assert http.post(url, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    # Someone adds Grace back by hand, in another list file.
    folder = project.parent / "subscribers"
    (folder / "friends.toml").write_text('[[subscriber]]\nemail = "grace@example.com"\n')
    grace = 'timezone = "America/New_York"\nstatus = '
    text = (folder / "subscribers.toml").read_text()
    assert grace + '"unsubscribed"' in text
    (folder / "subscribers.toml").write_text(text.replace(grace + '"unsubscribed"',
                                                          grace + '"active"'))
    check = cli(project, "subscribers", "check")
    assert check.exit_code == 1
    assert ("(one-click, database) but active in subscribers/friends.toml:1 — run "
            "`digest subscribers check --fix`") in check.output
    assert "sent 2 of 2" in digest(project, "send").stdout
    assert "grace@example.com" not in {r for m in smtp_server.received for r in m.rcpt_tos}

    back = cli(project, "subscribers", "resubscribe", "grace@example.com")
    assert back.exit_code == 0 and "suppression lifted" in back.output, back.output
    assert "sent 1 of 1" in digest(project, "send", "--to", "grace@example.com").stdout
    assert smtp_server.received[-1].rcpt_tos == ["grace@example.com"]


def test_web_version_leaves_out_personal_fields(project: Path,
                                                smtp_server: SmtpServer) -> None:
    config = collected(project)
    assert digest(project, "send").returncode == 0
    day = pipeline.today(config, pipeline.utcnow())
    with Server(config, base_port(config)), httpx.Client(timeout=10) as http:
        base = config.newsletter.base_url
        page = http.get(f"{base}/view/{day.isoformat()}")
        assert page.status_code == 200
        assert "The Daily Selection" in page.text
        for personal in ("ada@example.org", "grace@", "kenji@", "Lovelace", "Hopper",
                         "Tanaka", "/unsubscribe/", "__dgst_"):
            assert personal not in page.text, personal
        assert f'href="{base}/unsubscribe"' in page.text
        assert "script-src" not in page.headers["content-security-policy"]
        # The link in the sent email is this page.
        sent = smtp_server.received[0].message.get_body(("html",))
        assert sent is not None and f"{base}/view/{day.isoformat()}" in sent.get_content()
        index = http.get(f"{base}/")
        assert f'href="view/{day.isoformat()}"' in index.text
        assert http.get(f"{base}/view/1999-01-01").status_code == 404
        assert http.get(f"{base}/view/not-a-day").status_code == 404
        assert http.get(f"{base}/unsubscribe").status_code == 200


def test_serve_port_in_use_is_one_line(project: Path) -> None:
    config = configuration.load(project)
    port = base_port(config)
    with Server(config, port):
        proc = digest(project, "serve", "--port", str(port))
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: address in use (set [serve] port or pass "
        "--port)"]


def _suppressed(config: Config) -> set[str]:
    store = pipeline.open_store(config)
    try:
        return store.suppressed()
    finally:
        store.close()
