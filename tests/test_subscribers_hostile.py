"""Subscriber files under operator mistakes and concurrency: the lock, unsubscribes
that must reach the files, a file with a TOML syntax error, and the smaller edges.
As a user meets them: `python -m digest` in subprocesses, real files, real SQLite."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import pytest

from digest import config as configuration
from digest import pipeline
from digest.subscribers import admin
from digest.subscribers import edit as edits
from digest.subscribers import roster as subs
from digest.subscribers.lock import LockBusy, folder_lock
from tests.peers import FeedServer, SmtpServer
from tests.test_e2e import digest, make_project

REPO = Path(__file__).resolve().parents[1]
BROKEN = b'# the b list\n[[subscriber]]\nemail = "bob@example.org"\nname = "Bob\n'
GOOD_B = b'# the b list\n[[subscriber]]\nemail = "bob@example.org"\nname = "Bob"\n'
BAD_LINE = ("subscribers/b.toml:4: invalid TOML (Illegal character '\\n', column 12)")


def project(tmp_path: Path) -> Path:
    (tmp_path / "config.toml").write_text((REPO / "config.toml").read_text())
    (tmp_path / "subscribers").mkdir()
    (tmp_path / "subscribers" / "subscribers.toml").write_bytes(
        (REPO / "subscribers" / "subscribers.toml").read_bytes())
    return tmp_path / "config.toml"


def statuses(path: Path) -> dict[str, str]:
    data = tomllib.loads(path.read_text())
    return {e["email"]: e.get("status", "active") for e in data.get("subscriber", [])}


# -- 1. the lock ------------------------------------------------------------------------

def test_ten_concurrent_adds_of_one_address_make_one_entry(tmp_path: Path) -> None:
    config = project(tmp_path)
    procs = [subprocess.Popen([sys.executable, "-m", "digest", "--config", str(config),
                               "subscribers", "add", "lin@example.org"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=tmp_path) for _ in range(10)]
    outs = [(p.wait(120), *p.communicate()) for p in procs]
    text = (tmp_path / "subscribers" / "subscribers.toml").read_text()
    assert text.count('"lin@example.org"') == 1
    assert sorted(rc for rc, _, _ in outs) == [0] + [1] * 9
    assert sum(out == "added lin@example.org to subscribers/subscribers.toml\n"
               for _, out, _ in outs) == 1
    refused = [err for rc, _, err in outs if rc == 1]
    assert all(err.startswith("error: lin@example.org is already subscribed (") for err in refused)
    assert not any("Traceback" in err for _, _, err in outs)


def test_threads_adding_at_the_same_instant_make_one_entry(tmp_path: Path) -> None:
    """The same race, made certain: every thread starts its add at one barrier."""
    folder = tmp_path / "subscribers"
    folder.mkdir()
    (folder / "team.toml").write_text('[[subscriber]]\nemail = "ada@example.org"\n')
    start = threading.Barrier(8)
    errors: list[str] = []

    def add() -> None:
        start.wait()
        try:
            edits.add(folder, "lin@example.org", list_name="team")
        except subs.SubscriberError as e:
            errors.append(e.message)

    threads = [threading.Thread(target=add) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (folder / "team.toml").read_text().count('"lin@example.org"') == 1
    assert len(errors) == 7 and all("already subscribed" in e for e in errors)


def test_a_writer_waits_for_the_lock_then_fails_with_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "subscribers"
    folder.mkdir()
    path = folder / "team.toml"
    path.write_text('[[subscriber]]\nemail = "ada@example.org"\n')
    before = path.read_bytes()
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with folder_lock(folder):
            held.set()
            release.wait()

    t = threading.Thread(target=holder)
    t.start()
    held.wait()
    try:
        with pytest.raises(LockBusy) as e:
            edits.set_status(folder, "ada@example.org", "paused", timeout=0.05)
    finally:
        release.set()
        t.join()
    assert str(e.value) == (f"{folder}: another digest process kept the subscriber files locked "
                            "for more than 0.05 s; nothing written (run the command again; if "
                            "this repeats, look for a stuck digest process)")
    assert path.read_bytes() == before
    # Once the holder lets go, the same edit goes through.
    assert edits.set_status(folder, "ada@example.org", "paused", timeout=0.05) == [path]


# -- 2. unsubscribes reach the file -------------------------------------------------

def test_hundred_concurrent_one_click_unsubscribes_all_reach_the_file(tmp_path: Path) -> None:
    config_path = project(tmp_path)
    path = tmp_path / "subscribers" / "many.toml"
    people = [f"reader{i}@example.org" for i in range(100)]
    path.write_text("# a big list, kept by hand\n\n" + "".join(
        f'# reader {i}\n[[subscriber]]\nemail = "{e}"\nstatus = "active"\n\n'
        for i, e in enumerate(people)))
    config = configuration.load(config_path)
    store = pipeline.open_store(config)
    start = threading.Barrier(100)
    failures: list[str] = []

    def one_click(email: str) -> None:
        start.wait()
        # What `POST /unsubscribe/TOKEN` calls (serve._unsubscribe), one thread a request.
        done = admin.unsubscribe(config, store, email, reason="one-click")
        if done.file_error:
            failures.append(done.file_error)

    threads = [threading.Thread(target=one_click, args=(e,)) for e in people]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert store.suppressed() >= set(people)
    finally:
        store.close()
    assert failures == []
    assert statuses(path) == dict.fromkeys(people, "unsubscribed")
    text = path.read_text()
    assert text.startswith("# a big list, kept by hand\n\n# reader 0\n[[subscriber]]\n")
    assert all(f"# reader {i}\n" in text for i in range(100))
    check = digest(config_path, "subscribers", "check")
    assert check.returncode == 0, check.stdout


def test_check_reports_drift_and_fix_writes_it(tmp_path: Path) -> None:
    config = project(tmp_path)
    path = tmp_path / "subscribers" / "subscribers.toml"
    done = digest(config, "subscribers", "unsubscribe", "kenji@example.net")
    assert done.returncode == 0
    assert done.stdout == ("kenji@example.net unsubscribed: suppressed, gets no more mail; "
                           "status set in subscribers/subscribers.toml\n")
    unsubscribed = path.read_bytes()
    # Drift by hand: the file says active again, the database still says unsubscribed.
    kenji = b'timezone = "Asia/Tokyo"\nstatus = '
    path.write_bytes(unsubscribed.replace(kenji + b'"unsubscribed"', kenji + b'"active"'))
    line = next(n for n, t in enumerate(path.read_text().splitlines(), 1)
                if "kenji@example.net" in t) - 1
    day = pipeline.utcnow().strftime("%Y-%m-%d")
    drift = (f"error: kenji@example.net: unsubscribed on {day} (cli, database) but active in "
             f"subscribers/subscribers.toml:{line} — run `digest subscribers check --fix`")

    check = digest(config, "subscribers", "check")
    assert check.returncode == 1
    assert check.stdout.splitlines()[0] == drift

    fixed = digest(config, "subscribers", "check", "--fix")
    assert fixed.returncode == 0, fixed.stdout
    assert fixed.stdout.splitlines()[0] == ("fixed: kenji@example.net: status set to "
                                            f"unsubscribed in subscribers/subscribers.toml:{line}")
    assert path.read_bytes() == unsubscribed  # that one line back, comments and all
    again = digest(config, "subscribers", "check")
    assert again.returncode == 0 and "error:" not in again.stdout


# -- 3. a broken subscriber file -----------------------------------------------------

COMMANDS = [
    ("list",), ("add", "zed@example.org", "--list", "b"), ("remove", "bob@example.org"),
    ("pause", "bob@example.org"), ("resume", "bob@example.org"),
    ("resubscribe", "bob@example.org"), ("import", "people.csv", "--list", "b"),
    ("export",),
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: a[0])
def test_every_subscribers_command_refuses_a_broken_file(tmp_path: Path,
                                                         args: tuple[str, ...]) -> None:
    config = project(tmp_path)
    (tmp_path / "people.csv").write_text("email\nq@example.org\n")
    (tmp_path / "subscribers" / "b.toml").write_bytes(BROKEN)
    before = {p.name: p.read_bytes() for p in (tmp_path / "subscribers").iterdir()}
    proc = digest(config, "subscribers", *args)
    assert proc.returncode == 1
    assert proc.stderr == (f"error: {BAD_LINE}; nothing done (fix the file, then run the "
                           "command again)\n")
    assert proc.stdout == ""
    assert {p.name: p.read_bytes() for p in (tmp_path / "subscribers").iterdir()} == before


def test_check_and_unsubscribe_on_a_broken_file(tmp_path: Path) -> None:
    config = project(tmp_path)
    (tmp_path / "subscribers" / "b.toml").write_bytes(BROKEN)
    before = (tmp_path / "subscribers" / "subscribers.toml").read_bytes()
    check = digest(config, "subscribers", "check")
    assert check.returncode == 1 and check.stdout.splitlines()[0] == f"error: {BAD_LINE}"
    # The unsubscribe is recorded all the same (that stops the mail); the command says
    # the file still needs fixing.
    unsub = digest(config, "subscribers", "unsubscribe", "bob@example.org")
    assert unsub.returncode == 1
    assert unsub.stderr == (f"error: {BAD_LINE}; bob@example.org is suppressed, but this file "
                            "cannot be updated until it is fixed (fix it, then run "
                            "'digest subscribers check --fix')\n")
    assert (tmp_path / "subscribers" / "b.toml").read_bytes() == BROKEN
    assert (tmp_path / "subscribers" / "subscribers.toml").read_bytes() == before
    # Fixed by hand: the unsubscribe reaches it.
    (tmp_path / "subscribers" / "b.toml").write_bytes(GOOD_B)
    assert digest(config, "subscribers", "check", "--fix").returncode == 0
    assert statuses(tmp_path / "subscribers" / "b.toml") == {"bob@example.org": "unsubscribed"}


def test_send_without_a_good_version_sends_nothing(tmp_path: Path, feed_server: FeedServer,
                                                   smtp_server: SmtpServer) -> None:
    config = make_project(tmp_path, feed_server, smtp_server.port)
    (tmp_path / "subscribers" / "b.toml").write_bytes(BROKEN)
    assert digest(config, "collect").returncode == 0
    for command in (("send",), ("run", "--once")):
        proc = digest(config, *command)
        assert proc.returncode == 1
        assert proc.stderr.splitlines()[-1] == (
            f"error: {BAD_LINE}; no good version of this file was ever read, so nothing is "
            "sent to anyone (fix the file, then run again)")
    assert smtp_server.received == []
    cfg = configuration.load(config)
    store = pipeline.open_store(cfg)
    try:
        assert store.deliveries(pipeline.today(cfg, pipeline.utcnow())) == []
    finally:
        store.close()
    assert (tmp_path / "subscribers" / "b.toml").read_bytes() == BROKEN


def test_send_uses_the_last_good_version_and_says_so(tmp_path: Path, feed_server: FeedServer,
                                                     smtp_server: SmtpServer) -> None:
    config = make_project(tmp_path, feed_server, smtp_server.port)
    b = tmp_path / "subscribers" / "b.toml"
    b.write_bytes(GOOD_B)
    assert digest(config, "subscribers", "list").returncode == 0  # digest reads it once, good
    b.write_bytes(BROKEN)
    assert digest(config, "collect").returncode == 0
    # Drift waiting to be written: the send's catch-up writes it.
    cfg = configuration.load(config)
    store = pipeline.open_store(cfg)
    store.suppress("kenji@example.net", "one-click")
    store.close()

    sent = digest(config, "send")
    assert sent.returncode == 0, sent.stderr
    warning = [ln for ln in sent.stderr.splitlines() if "b.toml" in ln]
    assert len(warning) == 1
    assert warning[0].endswith(f"{BAD_LINE}; using the last good version from "
                               f"{pipeline.utcnow():%Y-%m-%d} "
                               f"{warning[0].split(' UTC (')[0][-5:]} UTC (1 subscriber) "
                               "— fix the file")
    got = {r for m in smtp_server.received for r in m.rcpt_tos}
    assert got == {"ada@example.org", "grace@example.com", "bob@example.org"}
    assert b.read_bytes() == BROKEN
    assert statuses(tmp_path / "subscribers" / "subscribers.toml")["kenji@example.net"] \
        == "unsubscribed"
    status = digest(config, "status")
    assert status.returncode == 0
    assert f"warning: {warning[0].split(': ', 1)[1]}" in status.stderr.splitlines()


# -- 4. the smaller ones ----------------------------------------------------------------

def test_check_lists_every_problem_of_an_entry(tmp_path: Path) -> None:
    config = project(tmp_path)
    (tmp_path / "subscribers" / "bad.toml").write_text(
        '[[subscriber]]\nemail = "nope"\ntimezone = "Mars/Olympus"\nformat = "pdf"\n'
        'topics = ["gardening"]\n')
    check = digest(config, "subscribers", "check")
    assert check.returncode == 1
    errors = [ln for ln in check.stdout.splitlines() if ln.startswith("error:")]
    where = f"{tmp_path}/subscribers/bad.toml:1"
    assert [e.split(": ")[1:3] for e in errors] == [
        [where, "email"], [where, "timezone"], [where, "format"], [where, "topics"]]
    assert errors[2] == f"error: {where}: format: 'pdf' is not html or text"
    assert check.stdout.splitlines()[-1].endswith(": 4 problems (those entries are skipped "
                                                  "when sending), 0 notes")


def test_export_includes_suppressions_that_are_in_no_file(tmp_path: Path) -> None:
    config = project(tmp_path)
    assert digest(config, "subscribers", "unsubscribe", "walk-in@example.org").returncode == 0
    out = digest(config, "subscribers", "export")
    assert out.returncode == 0
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert list(rows[0])[-1] == "source"
    assert {r["source"] for r in rows[:-1]} == {"files"}
    assert rows[-1] == {"email": "walk-in@example.org", "name": "", "topics": "",
                        "timezone": "", "format": "html", "status": "unsubscribed",
                        "added": "", "lists": "", "suppressed": "true", "source": "database"}


def test_removing_the_last_entry_leaves_a_valid_file(tmp_path: Path) -> None:
    config = project(tmp_path)
    solo = tmp_path / "subscribers" / "solo.toml"
    assert digest(config, "subscribers", "add", "solo@example.org", "--list", "solo"
                  ).returncode == 0
    gone = digest(config, "subscribers", "remove", "solo@example.org")
    assert gone.returncode == 0
    assert gone.stdout == "removed solo@example.org from subscribers/solo.toml\n"
    assert solo.read_text() == ("# No subscribers left in this list. Add one with: "
                                "digest subscribers add EMAIL --list solo\n")
    assert tomllib.loads(solo.read_text()) == {}
    assert digest(config, "subscribers", "check").returncode == 0
    back = digest(config, "subscribers", "add", "solo2@example.org", "--list", "solo")
    assert back.returncode == 0
    assert statuses(solo) == {"solo2@example.org": "active"}
