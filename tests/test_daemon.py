"""`digest run` as an operator runs it: a real daemon process, real signals,
a real SMTP server, a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import pytest

from digest import config as configuration
from digest import pipeline
from tests.peers import FeedServer, SmtpServer, _Handler
from tests.test_e2e import ACTIVE, make_project


def schedule_in(config: Path, seconds: int) -> datetime:
    """Set the daily time a few seconds ahead; returns that moment, the clock the
    test then reasons with (the run's day is the app's own today() of it)."""
    fire_at = datetime.now(ZoneInfo("Europe/Berlin")).replace(microsecond=0) + \
        timedelta(seconds=seconds)
    text = re.sub(r'time = "[0-9:]+"', f'time = "{fire_at:%H:%M:%S}"', config.read_text())
    config.write_text(text)
    return fire_at


class Daemon:
    """`digest -v run` in a subprocess, its stdout and stderr read line by line as they
    come, so a test waits for a line (an event) instead of sleeping."""

    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "digest", "--config", str(config), "-v", "run"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=config.parent,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.lines: dict[str, list[str]] = {"out": [], "err": []}
        self.changed = threading.Condition()
        self.readers = [threading.Thread(target=self._read, args=(name, pipe), daemon=True)
                        for name, pipe in (("out", self.proc.stdout), ("err", self.proc.stderr))]
        for reader in self.readers:
            reader.start()

    def _read(self, name: str, pipe: IO[str] | None) -> None:
        assert pipe is not None
        for line in pipe:
            with self.changed:
                self.lines[name].append(line)
                self.changed.notify_all()
        with self.changed:
            self.lines[name].append("")  # EOF marker: the process closed its end
            self.changed.notify_all()

    def wait_line(self, stream: str, pattern: str, *, after: int = 0,
                  timeout: float = 60) -> int:
        """Wait for a line matching pattern (from line index ``after`` on); its index."""
        found = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                lines = self.lines[stream]
                for i in range(after, len(lines)):
                    if found.search(lines[i]):
                        return i
                assert "" not in lines[after:], \
                    f"daemon ended before {pattern!r}:\n{self.text('out')}{self.text('err')}"
                left = deadline - time.monotonic()
                assert left > 0, f"no {pattern!r} within {timeout} s:\n{self.text('err')}"
                self.changed.wait(left)

    def text(self, stream: str) -> str:
        return "".join(self.lines[stream])

    def stop(self, sig: int = signal.SIGTERM) -> tuple[str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(timeout=30)
        for reader in self.readers:
            reader.join(timeout=30)
        return self.text("out"), self.text("err")


def digest_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "digest", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120, cwd=config.parent)


def test_daemon_fires_at_the_scheduled_time_and_stops_cleanly(
        tmp_path: Path, feed_server: FeedServer, smtp_server: SmtpServer) -> None:
    config = make_project(tmp_path, feed_server, smtp_server.port)
    # Everyone in one group so a single job sends to all three.
    subs = tmp_path / "subscribers" / "subscribers.toml"
    subs.write_text(re.sub(r'timezone = "[^"]+"', 'timezone = "Europe/Berlin"', subs.read_text()))
    schedule_in(config, 3)
    daemon = Daemon(config)
    try:
        # The job's own last line: everything it sends is at the server by then.
        daemon.wait_line("err", r"group Europe/Berlin: sent \d+ of \d+")
    finally:
        out, err = daemon.stop()
    assert daemon.proc.returncode == 0, err
    assert {r for m in smtp_server.received for r in m.rcpt_tos} == ACTIVE
    assert len(smtp_server.received) == len(ACTIVE)
    assert "next run for Europe/Berlin (3 subscribers)" in out
    assert "digest daemon stopped" in out
    assert "sent 3 of 3" in err  # the job's log line, with its run id
    assert re.search(r"info: \[\d{8}T\d{6}-[0-9a-f]{6}\] group Europe/Berlin: sent 3 of 3", err)
    assert "Traceback" not in err

    status = json.loads(digest_cli(config, "status", "--json").stdout)
    assert status[0]["kind"] == "scheduled" and status[0]["sent"] == 3
    assert set(status[0]) >= {"started", "finished", "collected", "selected", "sent",
                              "deferred", "failed"}


class SlowHandler(_Handler):
    """Takes a while over each message, so a signal lands mid-send; sets ``reached``
    once ``enough`` messages are in."""

    def __init__(self, enough: int) -> None:
        super().__init__()
        self.count = 0
        self.enough = enough
        self.reached = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(0.05)
        reply = await super().handle_DATA(server, session, envelope)
        self.count += 1
        if self.count >= self.enough:
            self.reached.set()
        return reply


@pytest.fixture
def slow_smtp() -> Iterator[SmtpServer]:
    with SmtpServer(handler=SlowHandler(enough=20)) as server:
        yield server


def many_subscribers(project: Path, n: int) -> set[str]:
    emails = {f"reader{i:04d}@example.org" for i in range(n)}
    (project.parent / "subscribers" / "subscribers.toml").write_text("".join(
        f'[[subscriber]]\nemail = "{e}"\n' for e in sorted(emails)))
    return emails


def test_sigterm_during_a_send_loses_and_repeats_no_one(
        tmp_path: Path, feed_server: FeedServer, slow_smtp: SmtpServer) -> None:
    config = make_project(tmp_path, feed_server, slow_smtp.port)
    everyone = many_subscribers(config, 200)
    fire_at = schedule_in(config, 3)
    handler = slow_smtp.handler
    assert isinstance(handler, SlowHandler)
    daemon = Daemon(config)
    try:
        assert handler.reached.wait(60), f"20 messages never arrived:\n{daemon.text('err')}"
    finally:
        _out, err = daemon.stop()
    assert daemon.proc.returncode == 0, err
    assert "stopped by signal" in err
    got = Counter(r for m in slow_smtp.received for r in m.rcpt_tos)
    assert got and max(got.values()) == 1
    assert len(got) < len(everyone), "the signal came too late to test anything"

    # The journal's day is the app's today() at the scheduled moment, not the test's
    # wall clock (which may have crossed midnight since).
    day = pipeline.today(configuration.load(config), fire_at.astimezone(UTC)).isoformat()
    journal = json.loads(digest_cli(config, "status", "--day", day, "--json").stdout)
    sent = {r["email"] for r in journal if r["status"] == "sent"}
    assert sent == set(got)  # the journal says exactly what the server got
    assert {r["status"] for r in journal} <= {"sent", "pending"}

    # The next run picks up exactly the rest.
    finish = digest_cli(config, "send")
    assert finish.returncode == 0, finish.stderr
    total = Counter(r for m in slow_smtp.received for r in m.rcpt_tos)
    assert set(total) == everyone and max(total.values()) == 1


def test_second_daemon_refuses_and_sighup_reloads(tmp_path: Path, feed_server: FeedServer,
                                                 smtp_server: SmtpServer) -> None:
    config = make_project(tmp_path, feed_server, smtp_server.port)
    daemon = Daemon(config)
    try:
        # Printed once the lock is held and the signal handlers are in place.
        daemon.wait_line("out", r"^digest daemon running")
        second = digest_cli(config, "run")
        assert second.returncode != 0
        lines = [ln for ln in second.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "another digest daemon" in lines[0], second.stderr
        # SIGHUP alone (no file changed, so the watcher has nothing to say) reloads.
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_line("err", r"reloaded")
        seen = len(daemon.lines["out"])
        config.write_text(config.read_text().replace('time = "07:00"', 'time = "08:15"'))
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_line("out", r"next run for Asia/Tokyo \(1 subscribers\): \S+T08:15:00\+09:00",
                         after=seen)
    finally:
        _out, err = daemon.stop()
    assert daemon.proc.returncode == 0, err


def test_json_logs_carry_the_run_id(tmp_path: Path, feed_server: FeedServer,
                                    smtp_server: SmtpServer) -> None:
    config = make_project(tmp_path, feed_server, smtp_server.port)
    proc = digest_cli(config, "--log-format", "json", "-v", "run", "--once")
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stderr.splitlines() if line.strip()]
    assert records, proc.stderr
    assert all({"time", "level", "logger", "run_id", "message"} <= set(r) for r in records)
    run_ids = {r["run_id"] for r in records if r["run_id"] != "-"}
    assert len(run_ids) == 1
    (run_id,) = run_ids
    status = json.loads(digest_cli(config, "status", "--json").stdout)
    assert status[0]["run_id"] == run_id and status[0]["sent"] == 3
