"""The preview app over HTTP: the real app under uvicorn on 127.0.0.1, a real SQLite
file filled from the bundled feeds, real file edits picked up by the watcher, and
the `digest preview` / `digest send --test` commands. (The browser side is in
test_preview_browser.py.)"""

from __future__ import annotations

import email
import email.policy
import logging
import os
import signal
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from digest import config as configuration
from digest import pipeline
from digest.cli import cli
from digest.config import Config
from digest.errors import DigestError
from digest.store.facade import Store
from digest.web.preview import dark_html, fingerprint, serve
from tests.peers import SmtpServer, free_port
from tests.preview_site import MASTHEAD, REPO, Running, events, make_site, today

LATE_UTC = datetime(2026, 11, 27, 23, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Config:
    return configuration.load(make_site(tmp_path_factory.mktemp("site")))


@pytest.fixture(scope="module")
def preview(site: Config) -> Iterator[Running]:
    with Running(site) as running:
        yield running


# -- the parts ------------------------------------------------------------------------

def test_email_parts(preview: Running) -> None:
    eml = httpx.get(preview.url("/email.eml"), params={"subscriber": "ada@example.org"})
    assert eml.status_code == 200
    assert eml.headers["content-type"].startswith("message/rfc822")
    message = email.message_from_bytes(eml.content, policy=email.policy.default)
    assert message.get_content_type() == "multipart/alternative"
    assert "ada@example.org" in str(message["To"])
    kinds = [p.get_content_type() for p in message.iter_parts()]
    assert kinds == ["text/plain", "text/html"]

    page = httpx.get(preview.url("/email.html"), params={"subscriber": "ada@example.org"})
    assert page.status_code == 200 and MASTHEAD in page.text
    assert "script-src 'none'" in page.headers["content-security-policy"]
    text = httpx.get(preview.url("/email.txt"), params={"subscriber": "ada@example.org"})
    assert text.headers["content-type"].startswith("text/plain")
    assert "Ada Lovelace" in text.text  # personalised, not the placeholder token


def test_dark_part_turns_the_dark_rules_on(preview: Running) -> None:
    light = httpx.get(preview.url("/email.html")).text
    dark = httpx.get(preview.url("/email.html"), params={"dark": "1"}).text
    assert "prefers-color-scheme: dark" in light or "prefers-color-scheme:dark" in light
    assert "prefers-color-scheme" not in dark.replace("prefers-color-scheme: light", "")
    assert "(min-width: 0px)" in dark
    css = "@media screen and (prefers-color-scheme: dark) { a { color: #fff } }"
    assert dark_html(css) == "@media screen and (min-width: 0px) { a { color: #fff } }"


def test_page_has_checks_text_raw_and_pickers(preview: Running, site: Config,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # The app's clock, injected: late on the 27th in UTC is already the 28th in Berlin,
    # the newsletter's zone, and the page must name Berlin's day.
    monkeypatch.setattr(pipeline, "utcnow", lambda: LATE_UTC)
    r = httpx.get(preview.url("/"), params={"subscriber": "grace@example.com"})
    assert r.status_code == 200
    page = r.text
    for key in ("size", "subject", "preheader", "alt", "images", "sections", "links"):
        assert f'id="check-{key}"' in page, key
    assert "of Gmail&#39;s 102 KB clip" in page
    assert 'id="text"' in page and 'id="raw"' in page and 'id="source"' in page
    assert "List-Unsubscribe" in page  # the raw headers
    assert '<option value="grace@example.com" selected>' in page
    assert today(site) == date(2026, 11, 28)
    assert "Today, Sat 2026-11-28 (live)" in page
    assert 'id="test-send"' in page


def test_bad_parameters_are_400(preview: Running) -> None:
    r = httpx.get(preview.url("/"), params={"subscriber": "not an address"})
    assert r.status_code == 400
    assert 'id="error"' in r.text and "not a valid email address" in r.text
    r = httpx.get(preview.url("/"), params={"day": "yesterday"})
    assert r.status_code == 400 and "is not a date" in r.text
    r = httpx.get(preview.url("/email.html"), params={"day": "2001-01-01"})
    assert r.status_code == 400 and "no digest stored for 2001-01-01" in r.text


def test_other_host_names_are_refused(preview: Running) -> None:
    # A site visited in the browser must not read the preview via a rebound DNS name.
    r = httpx.get(preview.url("/"), headers={"Host": "attacker.example"})
    assert r.status_code == 400


def test_no_other_site_may_frame_the_preview(preview: Running) -> None:
    # The page holds the token that sends test mail: framed, it could be clicked through.
    for path in ("/", "/email.txt", "/email.eml", "/preview.js"):
        r = httpx.get(preview.url(path))
        assert r.headers["x-frame-options"] == "DENY", path
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"], path
    refused = httpx.get(preview.url("/"), headers={"Host": "attacker.example"})
    assert refused.headers["x-frame-options"] == "DENY"
    # The page frames the email itself: only its own origin may.
    email = httpx.get(preview.url("/email.html"))
    assert email.headers["x-frame-options"] == "SAMEORIGIN"
    policy = email.headers["content-security-policy"]
    assert "frame-ancestors 'self'" in policy and "script-src 'none'" in policy


def test_an_address_digest_will_not_mail_is_409(preview: Running) -> None:
    # former@ is status = "unsubscribed" in the demo's file (line 37).
    for path in ("/email.eml", "/email.html", "/email.txt"):
        r = httpx.get(preview.url(path), params={"subscriber": "former@example.org"})
        assert r.status_code == 409, path
        assert r.headers["content-type"].startswith("text/plain")
        assert r.text.endswith("subscribers.toml:37); not sending\n") and r.text.count("\n") == 1
        assert r.text.startswith("error: former@example.org is unsubscribed (")
    page = httpx.get(preview.url("/"), params={"subscriber": "former@example.org"})
    assert page.status_code == 409 and "former@example.org is unsubscribed" in page.text


def test_send_test_needs_the_page_token(preview: Running) -> None:
    r = httpx.post(preview.url("/send-test"), json={"to": "me@example.org"})
    assert r.status_code == 403 and r.json()["ok"] is False
    r = httpx.post(preview.url("/send-test"), json={"to": "not an address"},
                   headers={"X-Preview-Token": preview.live.token})
    assert r.status_code == 400 and "not a valid email address" in r.json()["error"]


# -- live changes -------------------------------------------------------------------------

def test_changes_are_pushed_and_rerendered(tmp_path: Path) -> None:
    config = configuration.load(make_site(tmp_path / "site"))
    template = config.templates_dir / "daily.mjml.j2"
    good = template.read_text("utf-8")
    with Running(config) as running, httpx.Client() as client:
        stream = events(client, running.url("/events"))
        first = next(stream)  # sent on connect: the page compares it with its own
        assert first == running.live.version

        template.write_text(good.replace("{{ newsletter.name }}", "Edited Masthead"), "utf-8")
        second = next(stream)
        assert second != first
        assert "Edited Masthead" in client.get(running.url("/email.html")).text

        template.write_text(good + "\n{% if %}\n", "utf-8")
        assert next(stream) != second
        r = client.get(running.url("/"))
        assert r.status_code == 500
        assert 'id="error"' in r.text and "Template error" in r.text
        assert f"{template}:" in r.text and "Traceback" not in r.text
        part = client.get(running.url("/email.html"))
        assert part.status_code == 500 and part.text.startswith("error: ")

        template.write_text(good, "utf-8")
        next(stream)
        r = client.get(running.url("/"))
        assert r.status_code == 200 and 'id="email"' in r.text

        # config.toml is reloaded too; a broken one is shown, not fatal.
        text = config.path.read_text("utf-8")
        config.path.write_text(text.replace('name = "The Daily Selection"',
                                            'name = "The Evening Selection"', 1), "utf-8")
        next(stream)
        assert "The Evening Selection" in client.get(running.url("/email.html")).text
        config.path.write_text(text + "\n[selection]\nmax_stories = 'many'\n", "utf-8")
        next(stream)
        r = client.get(running.url("/"))
        assert r.status_code == 500 and "config.toml does not load" in r.text
        config.path.write_text(text, "utf-8")
        next(stream)
        assert client.get(running.url("/")).status_code == 200

        # A subscriber edit shows in the picker.
        folder = config.subscribers_dir
        extra = folder / "zz-new.toml"
        extra.write_text('[[subscriber]]\nemail = "lin@example.org"\nname = "Lin"\n', "utf-8")
        next(stream)
        assert 'value="lin@example.org"' in client.get(running.url("/")).text


def test_nothing_to_show_says_so(tmp_path: Path) -> None:
    path = make_site(tmp_path / "site")
    data = tomllib.loads(path.read_text("utf-8"))
    data["feeds"] = []  # startup collect finds nothing: an empty day
    config = configuration.from_dict(data, path)
    with Running(config) as running:
        r = httpx.get(running.url("/"))
        assert r.status_code == 200
        assert "No stories for today — run <code>digest collect</code>" in r.text
        assert 'id="email"' not in r.text
        assert httpx.get(running.url("/email.html")).status_code == 404


def test_fingerprint_follows_edits(tmp_path: Path) -> None:
    config = configuration.load(make_site(tmp_path / "site"))
    store = Store.open(config.db_path)
    try:
        before = fingerprint(config, store)
        assert fingerprint(config, store) == before
        template = config.templates_dir / "daily.txt.j2"
        template.write_text(template.read_text("utf-8") + "\n", "utf-8")
        after = fingerprint(config, store)
        assert after != before
        config.path.write_text(config.path.read_text("utf-8") + "\n", "utf-8")
        assert fingerprint(config, store) != after
    finally:
        store.close()


# -- digest send --test -------------------------------------------------------------------

def _invoke(args: list[str]) -> tuple[int, str]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        result = CliRunner().invoke(cli, args)
    finally:
        # The CLI installs its own log handler on the (captured, soon closed) stderr.
        root.handlers[:], root.level = handlers, level
    return result.exit_code, result.output


def test_send_test_command_mails_one_test_and_no_journal(tmp_path: Path) -> None:
    with SmtpServer() as smtp:
        path = make_site(tmp_path / "site", smtp_port=smtp.port)
        config = configuration.load(path)
        code, out = _invoke(["--config", str(path), "collect", "--json"])
        assert code == 0, out
        code, out = _invoke(["--config", str(path), "send", "--test", "--to", "me@example.org",
                             "--subscriber", "grace@example.com"])
        assert code == 0, out
        assert "sent a test" in out and "me@example.org" in out
        assert len(smtp.received) == 1
        got = smtp.received[0]
        assert got.rcpt_tos == ["me@example.org"]
        message = got.message
        assert str(message["Subject"]).startswith("[TEST] ")
        assert "me@example.org" in str(message["To"])
        assert "Grace Hopper" in message.get_body(("plain",)).get_content()  # her copy
        store = Store.open(config.db_path)
        try:
            assert store.deliveries(today(config)) == []  # no journal row
            assert store.digest_days() == []  # and nothing frozen
        finally:
            store.close()

        code, out = _invoke(["--config", str(path), "send", "--test", "--dry-run",
                             "--to", "me@example.org"])
        assert code == 0 and "dry run: would send a test" in out, out
        assert len(smtp.received) == 1


def test_send_test_needs_an_address(tmp_path: Path) -> None:
    path = make_site(tmp_path / "site")
    code, out = _invoke(["--config", str(path), "send", "--test"])
    assert code == 1
    assert "error: --test needs --to: the one address the test goes to" in out


def test_send_test_to_a_dead_server_is_one_line(tmp_path: Path) -> None:
    path = make_site(tmp_path / "site", smtp_port=free_port())
    assert _invoke(["--config", str(path), "collect"])[0] == 0
    code, out = _invoke(["--config", str(path), "send", "--test", "--to", "me@example.org"])
    assert code == 1 and "connection refused" in out and "Traceback" not in out, out


# -- the command ------------------------------------------------------------------------------

@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield int(other.getsockname()[1])


def test_serve_on_a_taken_port_is_a_user_error(tmp_path: Path, taken_port: int) -> None:
    config = configuration.load(make_site(tmp_path / "site"))
    with pytest.raises(DigestError, match="address in use") as caught:
        serve(config, host="127.0.0.1", port=taken_port, open_browser=False)
    assert caught.value.hint == "pass --port"
    assert not config.db_path.exists()  # failed before touching anything


def test_preview_command_on_a_taken_port(tmp_path: Path, taken_port: int) -> None:
    path = make_site(tmp_path / "site")
    code, out = _invoke(["--config", str(path), "preview", "--port", str(taken_port),
                         "--no-open"])
    assert code == 1, out
    assert f"error: cannot listen on 127.0.0.1:{taken_port}: address in use (pass --port)" in out


def test_preview_command_prints_url_opens_browser_and_stops(tmp_path: Path) -> None:
    path = make_site(tmp_path / "site")
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.py"
    # webbrowser honours $BROWSER: a stand-in "browser" that notes the URL it was given.
    browser.write_text(f"import sys, pathlib\npathlib.Path({str(opened)!r}).write_text("
                       "sys.argv[1])\n", "utf-8")
    port = free_port()
    env = {**os.environ, "BROWSER": f"{sys.executable} {browser} %s", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "digest", "--config", str(path), "preview", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = f"http://127.0.0.1:{port}/"
        assert line.strip() == f"previewing {MASTHEAD} at {url} (Ctrl-C to stop)"
        with httpx.Client(timeout=60) as client:
            assert client.get(url).status_code == 200  # waits in the backlog meanwhile
            # An open event stream must not keep Ctrl-C from stopping the server.
            stream = events(client, url + "events")
            next(stream)
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=20) == 0, proc.stderr.read() if proc.stderr else ""
        assert opened.read_text("utf-8") == url
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
