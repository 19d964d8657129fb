"""The schedule with an injected clock: DST, time-zone groups, misfires, restarts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from digest import config as configuration
from digest.ops import schedule
from digest.store.facade import Store
from tests.peers import FeedServer, SmtpServer
from tests.test_e2e import make_project

BERLIN = ZoneInfo("Europe/Berlin")
TOKYO = ZoneInfo("Asia/Tokyo")
REPO = Path(__file__).resolve().parents[1]


def load(tmp_path: Path, extra: str = "") -> configuration.Config:
    path = tmp_path / "config.toml"
    path.write_text(f'[schedule]\ntime = "07:00"\ntimezone = "Europe/Berlin"\n{extra}'
                    f'[paths]\nsubscribers = "{REPO / "subscribers"}"\n')
    return configuration.load(path)


def test_fires_at_local_time_across_dst(tmp_path: Path) -> None:
    cfg = load(tmp_path)
    # The nights the clocks go forward (29 March 2026) and back (25 October 2026).
    spring = schedule.next_run(cfg, datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN))
    autumn = schedule.next_run(cfg, datetime(2026, 10, 24, 12, 0, tzinfo=BERLIN))
    assert spring is not None and autumn is not None
    assert spring.astimezone(UTC) == datetime(2026, 3, 29, 5, 0, tzinfo=UTC)  # CEST, UTC+2
    assert autumn.astimezone(UTC) == datetime(2026, 10, 25, 6, 0, tzinfo=UTC)  # CET, UTC+1
    for fire in (spring, autumn):
        local = fire.astimezone(BERLIN)
        assert (local.hour, local.minute) == (7, 0)
    # The day after each change fires at 07:00 local too, at a different UTC hour.
    after = schedule.next_run(cfg, spring + timedelta(minutes=1))
    assert after is not None and after.astimezone(BERLIN).hour == 7


def test_only_configured_days(tmp_path: Path) -> None:
    cfg = load(tmp_path, 'days = ["mon"]\n')
    fire = schedule.next_run(cfg, datetime(2026, 11, 27, 12, 0, tzinfo=BERLIN))  # a Friday
    assert fire is not None and fire.astimezone(BERLIN).weekday() == 0


def test_time_zone_groups_fire_at_their_own_local_hour(tmp_path: Path) -> None:
    cfg = load(tmp_path)
    groups = schedule.groups(cfg)
    # The demo subscribers: Berlin is the default zone; London, New York, Tokyo are groups.
    assert set(groups) == {"", "Europe/London", "America/New_York", "Asia/Tokyo"}
    now = datetime(2026, 11, 27, 12, 30, tzinfo=UTC)
    tokyo = schedule.next_run(cfg, now, "Asia/Tokyo")
    berlin = schedule.next_run(cfg, now, "")
    assert tokyo is not None and berlin is not None
    assert tokyo.astimezone(TOKYO).hour == 7 and berlin.astimezone(BERLIN).hour == 7
    assert tokyo.astimezone(UTC) == datetime(2026, 11, 27, 22, 0, tzinfo=UTC)
    assert berlin.astimezone(UTC) == datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
    plan = schedule.plan(cfg, now)
    assert next(p.zone for p in plan) == "Asia/Tokyo"  # soonest first


@pytest.mark.parametrize(("late_minutes", "runs"), [(0, True), (59, True), (61, False),
                                                    (24 * 60 + 5, True)])
def test_misfire_grace(tmp_path: Path, late_minutes: int, runs: bool) -> None:
    cfg = load(tmp_path, "misfire_grace_minutes = 60\n")
    scheduled = datetime(2026, 11, 27, 7, 0, tzinfo=BERLIN)
    decision = schedule.decide(cfg, "", scheduled + timedelta(minutes=late_minutes))
    assert decision.run is runs
    if late_minutes > 24 * 60:  # a day later it is the next day's run that counts
        assert decision.scheduled == scheduled + timedelta(days=1)
    elif not runs:
        assert "missed by 1 h 1 min" in decision.reason and "skipped" in decision.reason


def _berlin_only(project: Path) -> None:
    """Keep only subscribers in the default group (Berlin) active, to test one group."""
    sub = project.parent / "subscribers" / "subscribers.toml"
    text = sub.read_text().replace('timezone = "Europe/London"', 'timezone = "Europe/Berlin"')
    sub.write_text(text)


def test_restart_the_same_morning_sends_nothing_twice(tmp_path: Path, feed_server: FeedServer,
                                                      smtp_server: SmtpServer) -> None:
    config = make_project(tmp_path, feed_server, smtp_server.port)
    _berlin_only(config)
    fire = datetime(2026, 11, 27, 7, 0, 2, tzinfo=BERLIN)
    schedule.run_group(str(config), "", now=fire)
    first = [r for m in smtp_server.received for r in m.rcpt_tos]
    assert first == ["ada@example.org"]  # the one active subscriber in Berlin's group
    # The daemon restarts at 07:20 and the job fires again (e.g. a catch-up run).
    schedule.run_group(str(config), "", now=fire + timedelta(minutes=20))
    assert [r for m in smtp_server.received for r in m.rcpt_tos] == first
    store = Store.open(configuration.load(config).db_path)
    runs = store.recent_runs()
    assert [r["status"] for r in runs] == ["ok", "ok"]
    assert [r["sent"] for r in runs] == [0, 1]


def test_missed_beyond_grace_is_skipped_and_logged(tmp_path: Path, feed_server: FeedServer,
                                                   smtp_server: SmtpServer,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    config = make_project(tmp_path, feed_server, smtp_server.port)
    _berlin_only(config)
    schedule.run_group(str(config), "", now=datetime(2026, 11, 27, 9, 30, tzinfo=BERLIN))
    assert smtp_server.received == []
    assert any("missed by 2 h 30 min" in r.getMessage() for r in caplog.records)
    store = Store.open(configuration.load(config).db_path)
    (run,) = store.recent_runs()
    assert run["status"] == "skipped" and "missed by" in run["note"]
    # Within the grace the same late run goes out, once.
    schedule.run_group(str(config), "", now=datetime(2026, 11, 27, 7, 45, tzinfo=BERLIN))
    assert [r for m in smtp_server.received for r in m.rcpt_tos] == ["ada@example.org"]


def test_tokyo_group_gets_its_own_edition(tmp_path: Path, feed_server: FeedServer,
                                          smtp_server: SmtpServer) -> None:
    config = make_project(tmp_path, feed_server, smtp_server.port)
    tokyo_morning = datetime(2026, 11, 28, 7, 0, 1, tzinfo=TOKYO)
    schedule.run_group(str(config), "Asia/Tokyo", now=tokyo_morning)
    assert [r for m in smtp_server.received for r in m.rcpt_tos] == ["kenji@example.net"]
    store = Store.open(configuration.load(config).db_path)
    (run,) = store.recent_runs()
    assert run["day"] == "2026-11-28" and run["grp"] == "Asia/Tokyo"
    # Berlin's group sends its own edition at its own 07:00, eight hours later.
    schedule.run_group(str(config), "", now=datetime(2026, 11, 28, 7, 0, 1, tzinfo=BERLIN))
    assert len(smtp_server.received) == 1  # Berlin's only demo subscriber is paused


def test_one_group_failing_does_not_stop_the_next(tmp_path: Path, feed_server: FeedServer,
                                                  smtp_server: SmtpServer,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    from tests.peers import free_port

    config = make_project(tmp_path, feed_server, free_port())  # nothing listens there
    tokyo_morning = datetime(2026, 11, 28, 7, 0, 1, tzinfo=TOKYO)
    schedule.run_group(str(config), "Asia/Tokyo", now=tokyo_morning)  # must not raise
    assert any("run failed" in r.getMessage() and "connection refused" in r.getMessage().lower()
               for r in caplog.records)
    config.write_text(config.read_text().replace(
        f"port = {_smtp_port(config)}", f"port = {smtp_server.port}"))
    new_york = datetime(2026, 11, 28, 7, 0, 1, tzinfo=ZoneInfo("America/New_York"))
    schedule.run_group(str(config), "America/New_York", now=new_york)
    assert [r for m in smtp_server.received for r in m.rcpt_tos] == ["grace@example.com"]
    store = Store.open(configuration.load(config).db_path)
    assert [r["status"] for r in store.recent_runs()] == ["ok", "failed"]


def _smtp_port(config: Path) -> int:
    return configuration.load(config).smtp.port
