"""`digest run` as an operator runs it: a real daemon process, real signals,
a real SMTP server, a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.peers import FeedServer, SmtpServer, _Handler
from tests.test_e2e import ACTIVE, make_project


def schedule_in(config: Path, seconds: int) -> None:
    fire_at = datetime.now(ZoneInfo("Europe/Berlin")) + timedelta(seconds=seconds)
    text = re.sub(r'time = "[0-9:]+"', f'time = "{fire_at:%H:%M:%S}"', config.read_text())
    config.write_text(text)


def start_daemon(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "digest", "--config", str(config), "-v",
                             "run"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=config.parent)


def wait_for(predicate: Any, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)


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
    proc = start_daemon(config)
    try:
        wait_for(lambda: len(smtp_server.received) >= len(ACTIVE), proc)
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
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
    """Takes a while over each message, so a signal lands mid-send."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(0.05)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def slow_smtp() -> Iterator[SmtpServer]:
    with SmtpServer(handler=SlowHandler()) as server:
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
    schedule_in(config, 3)
    proc = start_daemon(config)
    try:
        wait_for(lambda: len(slow_smtp.received) >= 20, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped by signal" in err
    got = Counter(r for m in slow_smtp.received for r in m.rcpt_tos)
    assert got and max(got.values()) == 1
    assert len(got) < len(everyone), "the signal came too late to test anything"

    journal = json.loads(digest_cli(config, "status", "--day", _today(), "--json").stdout)
    sent = {r["email"] for r in journal if r["status"] == "sent"}
    assert sent == set(got)  # the journal says exactly what the server got
    assert {r["status"] for r in journal} <= {"sent", "pending"}

    # The next run picks up exactly the rest.
    finish = digest_cli(config, "send")
    assert finish.returncode == 0, finish.stderr
    total = Counter(r for m in slow_smtp.received for r in m.rcpt_tos)
    assert set(total) == everyone and max(total.values()) == 1


def _today() -> str:
    return datetime.now(ZoneInfo("Europe/Berlin")).date().isoformat()


def test_second_daemon_refuses_and_sighup_reloads(tmp_path: Path, feed_server: FeedServer,
                                                 smtp_server: SmtpServer) -> None:
    config = make_project(tmp_path, feed_server, smtp_server.port)
    proc = start_daemon(config)
    try:
        wait_for(lambda: (tmp_path / "var" / "digest.db.lock").exists(), proc)
        time.sleep(1.0)
        second = digest_cli(config, "run")
        assert second.returncode != 0
        lines = [ln for ln in second.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "another digest daemon" in lines[0], second.stderr
        config.write_text(config.read_text().replace('time = "07:00"', 'time = "08:15"'))
        proc.send_signal(signal.SIGHUP)
        time.sleep(2.0)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "reloaded" in err
    assert re.search(r"next run for Asia/Tokyo \(1 subscribers\): \S+T08:15:00\+09:00", out), out


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
