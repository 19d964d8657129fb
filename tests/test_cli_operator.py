"""Operator mistakes and hostile input, as a user meets them: the `digest` CLI in a
subprocess, feeds from loopback servers, a real SQLite file, mail into aiosmtpd."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from digest.store.facade import Store
from tests.peers import FeedServer, SmtpServer
from tests.test_e2e import make_project

REPO = Path(__file__).resolve().parents[1]
GOOD = b"""<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Good</title>
<item><title>Fine</title><link>https://good.example/1</link></item></channel></rss>"""


def digest(cwd: Path, *args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": str(columns), "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "digest", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd, env=env)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def small_project(tmp_path: Path, feeds: dict[str, str]) -> Path:
    """A config with these feeds (name -> url), no subscribers, the bundled templates."""
    text = f'[storage]\npath = "digest.db"\n\n[paths]\ntemplates = "{REPO / "templates"}"\n\n'
    for name, url in feeds.items():
        # JSON's string escapes are TOML's: a control character goes in as \u001b.
        text += f"[[feeds]]\nurl = {json.dumps(url)}\nname = {json.dumps(name)}\n\n"
    (tmp_path / "subscribers").mkdir(exist_ok=True)
    (tmp_path / "config.toml").write_text(text)
    return tmp_path / "config.toml"


# -- 1. global options before or after the command ------------------------------------

@pytest.mark.parametrize("command", [["feeds"], ["subscribers", "list"]])
def test_config_works_before_and_after_the_command(tmp_path: Path, feed_server: FeedServer,
                                                   command: list[str]) -> None:
    (tmp_path / "p").mkdir()
    config = make_project(tmp_path / "p", feed_server, 2525)
    elsewhere = tmp_path / "elsewhere"  # no config.toml here: the option must be read
    elsewhere.mkdir()
    before = digest(elsewhere, "--config", str(config), *command)
    after = digest(elsewhere, *command, "--config", str(config))
    assert before.returncode == after.returncode == 0, (before.stderr, after.stderr)
    assert before.stdout == after.stdout
    if command == ["subscribers", "list"]:
        assert "ada@example.org" in after.stdout


def test_log_options_after_the_command(tmp_path: Path) -> None:
    config = small_project(tmp_path, {"Nowhere": "missing.xml"})
    got = digest(tmp_path, "collect", "--config", str(config), "-v", "--log-format", "json")
    assert got.returncode == 1
    # -v after the command: the info summary is logged, as JSON
    assert '"message": "collected 1 feeds in' in got.stderr


# -- 2. collect's exit codes; each error once ----------------------------------------

def test_every_feed_failed_exits_1_and_says_so_once(tmp_path: Path,
                                                    feed_server: FeedServer) -> None:
    config = small_project(tmp_path, {"A": feed_server.url("a.xml"),
                                      "B": feed_server.url("b.xml")})
    got = digest(tmp_path, "collect", "--config", str(config))
    assert got.returncode == 1
    assert got.stderr == ("error: all 2 feeds failed (errors above; each feed's history: "
                          "digest feeds)\n")
    assert (got.stdout + got.stderr).count("HTTP 404") == 2  # once per feed, in the table
    assert "collected 2 feeds: 0 ok, 0 not modified, 2 failed; 0 new articles" in got.stdout


def test_some_feeds_failed_exits_0_with_one_warning(tmp_path: Path,
                                                    feed_server: FeedServer) -> None:
    feed_server.routes["/good.xml"] = lambda _: (200, {}, GOOD)
    config = small_project(tmp_path, {"Good": feed_server.url("good.xml"),
                                      "Broken": feed_server.url("broken.xml")})
    got = digest(tmp_path, "collect", "--config", str(config))
    assert got.returncode == 0, got.stderr
    assert got.stderr == "warning: 1 of 2 feeds failed: Broken (history: digest feeds)\n"
    assert (got.stdout + got.stderr).count("HTTP 404") == 1


def test_every_help_lists_exit_codes() -> None:
    from click.testing import CliRunner

    from digest.cli import cli

    def commands(group: object, path: list[str]) -> Iterator[list[str]]:
        for name, cmd in getattr(group, "commands", {}).items():
            if hasattr(cmd, "commands"):
                yield from commands(cmd, [*path, name])
            else:
                yield [*path, name]

    for path in commands(cli, []):
        text = CliRunner().invoke(cli, [*path, "--help"]).output
        assert "Exit codes:\n    0  " in text and "\n    2  config.toml" in text, path


# -- 3. render: the whole edition, for nobody in particular ---------------------------

def test_render_without_subscriber_is_the_whole_edition(tmp_path: Path,
                                                        feed_server: FeedServer) -> None:
    config = make_project(tmp_path, feed_server, 2525)
    assert digest(tmp_path, "collect", "--config", str(config)).returncode == 0
    got = digest(tmp_path, "render", "--out", "out", "--config", str(config))
    assert got.returncode == 0, got.stderr
    eml = (tmp_path / "out" / "digest.eml").read_text()
    assert "To: Reader <reader@example.org>" in eml
    for real in ("ada@example.org", "grace@example.com", "kenji@example.net"):
        assert real not in eml
    text = (tmp_path / "out" / "digest.txt").read_text()
    for section in ("TOP STORIES", "WORLD", "BUSINESS", "TECHNOLOGY", "SCIENCE"):
        assert section in text.upper()

    ada = digest(tmp_path, "render", "--out", "ada", "--subscriber", "ada@example.org",
                 "--config", str(config))
    assert ada.returncode == 0, ada.stderr
    assert "To: Ada Lovelace <ada@example.org>" in (tmp_path / "ada" / "digest.eml").read_text()


# -- 4. the frozen edition ------------------------------------------------------------

def test_frozen_edition_is_announced_and_templates_still_checked(
        tmp_path: Path, feed_server: FeedServer, smtp_server: SmtpServer) -> None:
    config = make_project(tmp_path, feed_server, smtp_server.port)
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    config.write_text(config.read_text().replace(f'templates = "{REPO / "templates"}"',
                                                 'templates = "templates"'))
    assert digest(tmp_path, "collect", "--config", str(config)).returncode == 0
    assert digest(tmp_path, "send", "--config", str(config)).returncode == 0

    store = Store.open(tmp_path / "var" / "digest.db")
    try:
        (day,) = store.digest_days()
        when, ids = store.digest_frozen(day) or (None, ())
    finally:
        store.close()
    assert when is not None and ids
    from zoneinfo import ZoneInfo
    line = (f"today's edition was frozen at {when.astimezone(ZoneInfo('Europe/Berlin')):%H:%M:%S}"
            f" when sending began; template changes apply from tomorrow")

    rendered = digest(tmp_path, "render", "--out", "out", "--config", str(config))
    assert rendered.returncode == 0, rendered.stderr
    assert rendered.stderr == line + "\n"

    again = digest(tmp_path, "run", "--once", "--config", str(config))
    assert again.returncode == 0, again.stderr
    assert line in again.stdout.splitlines()
    assert f"digest for {day.isoformat()}: {len(ids)} articles in " in again.stdout

    (tmp_path / "templates" / "daily.mjml.j2").write_text("{% if %}broken")
    broken = digest(tmp_path, "render", "--out", "out2", "--config", str(config))
    assert broken.returncode == 1
    first, second = broken.stderr.splitlines()[:2]
    assert first == line and second.startswith("error: ")
    assert "daily.mjml.j2" in second


# -- 5. tables at 80 columns, empty states --------------------------------------------

LONG = "alexandra.konstantinopoulou@research-hospital.example.org"


def test_subscriber_table_keeps_addresses_whole_at_80_columns(tmp_path: Path) -> None:
    config = small_project(tmp_path, {})
    (tmp_path / "subscribers" / "list.toml").write_text(
        f'[[subscriber]]\nemail = "{LONG}"\nname = "Alexandra Konstantinopoulou-Papadaki"\n'
        f'topics = []\ntimezone = "America/Argentina/Buenos_Aires"\n\n'
        f'[[subscriber]]\nemail = "bo@example.org"\nname = "Bo"\n')
    got = digest(tmp_path, "subscribers", "list", "--config", str(config), columns=80)
    assert got.returncode == 0, got.stderr
    assert LONG in got.stdout and "…" not in got.stdout
    assert max(len(line) for line in got.stdout.splitlines()) <= 80


@pytest.mark.parametrize(("command", "line"), [
    (["feeds"], "no feeds checked yet: run `digest collect`"),
    (["subscribers", "list"], "no subscribers: add one with `digest subscribers add EMAIL`"),
    (["status"], "no runs yet: run `digest run --once`, or start the daemon with `digest run`"),
    (["rank"], "no articles collected yet: run `digest collect`"),
])
def test_empty_states_say_what_to_run(tmp_path: Path, command: list[str], line: str) -> None:
    config = small_project(tmp_path, {"Somewhere": "somewhere.xml"})
    got = digest(tmp_path, *command, "--config", str(config))
    assert (got.returncode, got.stdout, got.stderr) == (0, line + "\n", "")


# -- 6. terminal safety ---------------------------------------------------------------

class RawHttp:
    """Answers every connection with these bytes: a status line no polite server sends."""

    def __init__(self, response: bytes) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.response = response
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(self.response)

    def __enter__(self) -> RawHttp:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
        self.thread.join(5)


def test_control_characters_from_a_server_never_reach_the_terminal(tmp_path: Path) -> None:
    body = b"no"
    response = (b"HTTP/1.1 500 Oh\x1b[31mno\x07\r\nContent-Length: 2\r\n"
                b"Connection: close\r\n\r\n" + body)
    with RawHttp(response) as server:
        config = small_project(tmp_path, {"Evil\u202eName": f"http://127.0.0.1:{server.port}/f"})
        got = subprocess.run([sys.executable, "-m", "digest", "collect", "--config", str(config)],
                             capture_output=True, timeout=120, cwd=tmp_path,
                             env={**os.environ, "COLUMNS": "200", "PYTHONPATH": str(REPO)})
        health = subprocess.run([sys.executable, "-m", "digest", "feeds", "--config",
                                 str(config)], capture_output=True, timeout=120, cwd=tmp_path,
                                env={**os.environ, "COLUMNS": "200", "PYTHONPATH": str(REPO)})
    for out in (got.stdout, got.stderr, health.stdout, health.stderr):
        assert b"\x1b" not in out and b"\x07" not in out
        assert "\u202e".encode() not in out
    assert got.returncode == 1
    assert rb"HTTP 500 Oh\x1b[31mno\x07" in got.stdout
    assert rb"HTTP 500 Oh\x1b[31mno\x07" in health.stdout
    assert rb"Evil\u202eName" in got.stdout


def test_log_lines_are_escaped_too(tmp_path: Path) -> None:
    config = small_project(tmp_path, {"Bell\u0007": "missing\u001b.xml"})
    got = digest(tmp_path, "run", "--once", "--config", str(config))
    assert "\x1b" not in got.stderr and "\x07" not in got.stderr
    wanted = r"warning: \[[^]]+\] Bell\\x07: file not found: .*missing\\x1b\.xml"
    assert re.search(wanted, got.stderr), got.stderr
