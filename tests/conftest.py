from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.peers import FeedServer, SmtpServer

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpus" / "feeds"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing in a test touches the user's files or environment."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DIGEST_SECRET", "test-secret")
    monkeypatch.delenv("SMTP_PASSWORD", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    with FeedServer(REPO / "feeds") as server:
        yield server


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """A test certificate authority: TLS with verification on, against loopback."""
    return trustme.CA()


@pytest.fixture
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    return ctx


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


def pytest_report_header() -> str:
    return f"digest tests: corpus at {CORPUS} ({'present' if CORPUS.is_dir() else 'missing'}); " \
           f"DISPLAY={os.environ.get('DISPLAY', '')!r}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless chromium through Playwright, for the preview's browser tests
    (tests/test_email_browser.py keeps its own, without the expect() timeout)."""
    from tests.test_preview_browser import CHROMIUM, CHROMIUM_ARGS, WAIT

    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=WAIT)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                      args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
