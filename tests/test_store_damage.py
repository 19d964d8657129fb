"""A damaged, unopenable or locked database, as an operator meets it: every command
that opens the database says so in one line naming the file, exits 2, and leaves the
file as it found it, byte for byte, with nothing new beside it."""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from digest.errors import StoreBusy
from digest.store.facade import Store
from tests.peers import FeedServer, free_port
from tests.test_e2e import make_project

RESTORE = "(restore it from a backup, or move it aside and digest starts a new one)"


def _commands() -> list[tuple[str, ...]]:
    """Every command that opens the database (the others never touch it)."""
    return [
        ("collect",), ("collect", "--json"), ("feeds",), ("feeds", "--json"),
        ("feeds", "--revive", "https://example.org/feed.xml"), ("rank",), ("rank", "--json"),
        ("render", "--out", "rendered"), ("send",), ("send", "--dry-run"),
        ("send", "--test", "--to", "me@example.org"), ("run", "--once"), ("run",),
        ("status",), ("status", "--json"), ("serve", "--port", str(free_port())),
        ("preview", "--no-open", "--port", str(free_port())), ("subscribers", "check"),
        ("subscribers", "export"), ("subscribers", "unsubscribe", "ada@example.org"),
        ("subscribers", "resubscribe", "ada@example.org"),
        ("subscribers", "resume", "ada@example.org"),
    ]


@pytest.fixture
def project(tmp_path: Path, feed_server: FeedServer) -> Path:
    return make_project(tmp_path, feed_server, free_port())


def _real_database(path: Path) -> None:
    """A database as digest leaves it (WAL mode, every table), with some rows."""
    store = Store.open(path)
    try:
        store.secret()
        for i in range(200):
            store.suppress(f"reader{i}@example.org", "web")
            store.record_feed(f"https://example.org/{i}/{'x' * 300}", f"feed {i}", "ok")
    finally:
        store.close()


def _garbage(db: Path) -> None:
    db.write_bytes(random.Random(15).randbytes(64 * 1024))


def _truncated(db: Path) -> None:
    _real_database(db)
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 3])


def _run_all(config: Path, commands: list[tuple[str, ...]]) -> list[tuple[int, str]]:
    """Run the commands side by side (they only read the file), each to its end."""
    procs = [subprocess.Popen([sys.executable, "-m", "digest", "--config", str(config), *c],
                              cwd=config.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for c in commands]
    done = []
    for p in procs:
        try:
            _out, err = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            p.kill()
            _out, err = p.communicate()
        done.append((p.returncode, err))
    return done


def _listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_every_command_that_opens_the_database_says_it_is_damaged(project: Path) -> None:
    """All of them, in this process (click's runner) to keep it quick: they all reach
    the database through Store, which is where the error is made."""
    from click.testing import CliRunner

    from digest.cli import cli

    db = project.parent / "var" / "digest.db"
    db.parent.mkdir()
    _garbage(db)
    before = _listing(db.parent)
    for command in _commands():
        result = CliRunner().invoke(cli, ["--config", str(project), *command])
        assert (result.exit_code, result.stderr) == (
            2, f"error: {db}: the database is damaged: file is not a database {RESTORE}\n"), \
            (command, result.output, result.exception)
    assert _listing(db.parent) == before  # the file untouched, no -wal, -shm or .lock left


@pytest.mark.parametrize("damage,reason,commands", [
    (_garbage, "file is not a database",
     [("collect",), ("feeds",), ("status",), ("serve", "--port", str(free_port())), ("run",)]),
    (_truncated, "database disk image is malformed", [("status",), ("run", "--once")]),
])
def test_a_damaged_database_as_the_operator_meets_it(
        project: Path, damage: Callable[[Path], None], reason: str,
        commands: list[tuple[str, ...]]) -> None:
    db = project.parent / "var" / "digest.db"
    db.parent.mkdir()
    damage(db)
    before = _listing(db.parent)

    for command, (code, err) in zip(commands, _run_all(project, commands), strict=True):
        assert (code, err) == (2, f"error: {db}: the database is damaged: {reason} {RESTORE}\n"), \
            command
    assert _listing(db.parent) == before  # the file untouched, no -wal, -shm or .lock left


def test_damage_only_a_later_query_meets_is_one_line_too(project: Path) -> None:
    """The header and schema read fine, so the database opens; the feeds table's page is
    garbage, so `digest feeds` is the first to meet the damage, at its first query."""
    db = project.parent / "var" / "digest.db"
    _real_database(db)
    with sqlite3.connect(db) as conn:
        root, = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'feeds'").fetchone()
        page_size, = conn.execute("PRAGMA page_size").fetchone()
    conn.close()
    with db.open("r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(b"\xa5" * page_size)
    before = _listing(db.parent)

    (code, err), (status_code, _) = _run_all(project, [("feeds",), ("status",)])
    assert (code, err) == (
        2, f"error: {db}: the database is damaged: database disk image is malformed {RESTORE}\n")
    assert status_code == 0  # `status` never reads the damaged page: no false alarm
    assert _listing(db.parent) == before


def test_a_folder_or_an_unopenable_path(project: Path, tmp_path: Path) -> None:
    db = project.parent / "var" / "digest.db"
    db.mkdir(parents=True)
    (code, err), = _run_all(project, [("status",)])
    assert (code, err) == (2, f"error: {db}: is a folder, not a database file "
                              "(point storage.path at a file, or move the folder aside)\n")
    assert list(db.iterdir()) == []

    db.rmdir()
    db.symlink_to(tmp_path / "gone" / "digest.db")  # into a folder that does not exist
    (code, err), = _run_all(project, [("feeds",)])
    assert (code, err) == (2, f"error: {db}: cannot open the database: unable to open database "
                              f"file (check its owner and permissions; or {RESTORE[1:]}\n")
    assert [p.name for p in db.parent.iterdir()] == ["digest.db"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file(project: Path) -> None:
    db = project.parent / "var" / "digest.db"
    _real_database(db)
    db.chmod(0)
    (code, err), = _run_all(project, [("status",)])
    assert (code, err) == (2, f"error: {db}: cannot open the database: unable to open database "
                              f"file (check its owner and permissions; or {RESTORE[1:]}\n")


def test_a_locked_database_is_busy_not_damaged(tmp_path: Path) -> None:
    db = tmp_path / "digest.db"
    _real_database(db)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write transaction
    # No busy timeout, so the test need not wait out digest's 30 s.
    store = Store(create_engine(f"sqlite:///{db}", connect_args={"timeout": 0}), db)
    try:
        assert store.suppressed()  # WAL: readers go on
        with pytest.raises(StoreBusy) as caught:
            store.suppress("late@example.org", "web")
    finally:
        store.close()
        holder.execute("ROLLBACK")
        holder.close()
    assert str(caught.value) == (f"{db}: the database is locked by another process: database "
                                 "is locked (try again when the other digest command has "
                                 "finished)")
    assert caught.value.exit_code == 1
    reopened = Store.open(db)
    try:
        assert len(reopened.suppressed()) == 200
    finally:
        reopened.close()
