from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

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


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


def pytest_report_header() -> str:
    return f"digest tests: corpus at {CORPUS} ({'present' if CORPUS.is_dir() else 'missing'}); " \
           f"DISPLAY={os.environ.get('DISPLAY', '')!r}"
