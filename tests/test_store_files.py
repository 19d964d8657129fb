"""The database holds subscriber addresses and (without DIGEST_SECRET) the signing
secret: it and its -wal/-shm files are 0600 whatever the umask, and a database left
readable by others is tightened when digest opens it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from digest.store.facade import Store
from tests.peers import FeedServer, free_port
from tests.test_e2e import make_project


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0o022)  # the common default: new files readable by everyone
    try:
        yield
    finally:
        os.umask(old)


def test_a_new_database_and_its_side_files_are_private(tmp_path: Path,
                                                       permissive_umask: None) -> None:
    db = tmp_path / "var" / "digest.db"
    store = Store.open(db)
    try:
        store.suppress("ada@example.org", "web")  # a write: the -wal and -shm exist now
        side = [db.with_name(db.name + s) for s in ("-wal", "-shm")]
        assert all(p.exists() for p in side)
        assert {p.name: _mode(p) for p in (db, *side)} == {
            "digest.db": 0o600, "digest.db-wal": 0o600, "digest.db-shm": 0o600}
    finally:
        store.close()


def test_the_cli_makes_the_database_private_and_tightens_a_wide_one(
        tmp_path: Path, feed_server: FeedServer, permissive_umask: None) -> None:
    config = make_project(tmp_path, feed_server, free_port())
    db = tmp_path / "var" / "digest.db"

    def status() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "digest", "--config", str(config), "-v",
                               "status"], capture_output=True, text=True, timeout=120,
                              cwd=tmp_path)

    first = status()  # the umask is inherited: 0o022
    assert first.returncode == 0, first.stderr
    assert _mode(db) == 0o600 and "tightened" not in first.stderr

    db.chmod(0o644)  # e.g. copied back from a backup with cp
    again = status()
    assert again.returncode == 0, again.stderr
    assert _mode(db) == 0o600
    assert [line for line in again.stderr.splitlines() if "tightened" in line] == [
        f"info: {db}: mode 0644 tightened to 0600 (it holds subscriber data and the "
        "signing secret)"]
