"""Approval before sending: a scheduled run with `approval = "required"` is held,
shown by `digest status`, released by `digest desk approve` or by the deadline (send
or skip), all on an injected clock; the scheduler's worker never waits inside a run."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from digest import config as configuration
from digest import pipeline
from digest.ops import approval, schedule
from digest.store.facade import Store
from tests.peers import FeedServer, SmtpServer
from tests.test_desk import run, show
from tests.test_e2e import make_project
from tests.test_schedule import _berlin_only

BERLIN = ZoneInfo("Europe/Berlin")
DAY = "2026-11-27"


def _at(hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2026, 11, 27, hour, minute, second, tzinfo=BERLIN)


def _project(tmp_path: Path, feed_server: FeedServer, port: int, on_deadline: str) -> Path:
    config = make_project(tmp_path, feed_server, port)
    _berlin_only(config)
    text = config.read_text().replace(
        '# approval = "required"', 'approval = "required"').replace(
        '# approval_deadline = "08:30"', 'approval_deadline = "08:30"').replace(
        '# on_deadline = "skip"', f'on_deadline = "{on_deadline}"')
    config.write_text(text)
    return config


def _runs(config: Path) -> list[dict]:  # type: ignore[type-arg]
    store = Store.open(configuration.load(config).db_path)
    try:
        return list(reversed(store.recent_runs()))
    finally:
        store.close()


def _sent(smtp: SmtpServer) -> list[str]:
    return [r for m in smtp.received for r in m.rcpt_tos]


def test_a_held_run_waits_for_approval_and_then_goes_out_with_the_edits(
        tmp_path: Path, feed_server: FeedServer, smtp_server: SmtpServer) -> None:
    config = _project(tmp_path, feed_server, smtp_server.port, "skip")
    schedule.run_group(str(config), "", now=_at(7, 0, 2))
    assert _sent(smtp_server) == []
    [held] = _runs(config)
    assert held["status"] == "waiting" and held["note"] == "waiting for approval since 07:00"
    assert "waiting for approval since 07:00" in run(config, "status").stdout
    assert show(config)["waiting_since"] is None  # today's (real) day holds nothing
    assert run(config, "desk", "show", "--day", DAY).stdout.count(
        "waiting for approval since 07:00") == 1

    approval.check_holds(str(config), now=_at(7, 10))  # not approved yet: still waiting
    assert _sent(smtp_server) == [] and [r["status"] for r in _runs(config)] == ["waiting"]
    # While it waits the desk still edits the edition (nothing is frozen yet).
    run(config, "collect")
    view = show(config)  # the demo feeds' stories, the same ones the held run ranks
    story = view["sections"][0]["stories"][0]["id"]
    run(config, "desk", "headline", story, "Edited while waiting", "--day", DAY)
    run(config, "desk", "approve", "--day", DAY)

    approval.check_holds(str(config), now=_at(7, 20))
    assert _sent(smtp_server) == ["ada@example.org"]
    body = smtp_server.received[0].message.get_body(("plain",))
    assert body is not None and "Edited while waiting" in body.get_content()
    first, second = _runs(config)
    assert first["status"] == "released" and first["note"].startswith("approved by ed")
    assert second["status"] == "ok" and second["sent"] == 1
    approval.check_holds(str(config), now=_at(7, 30))  # released once: nothing more
    assert len(smtp_server.received) == 1
    err = run(config, "desk", "headline", story, "Too late", "--day", DAY, code=1).stderr
    assert "frozen" in err


def test_unapproved_at_the_deadline_skips(tmp_path: Path, feed_server: FeedServer,
                                          smtp_server: SmtpServer) -> None:
    config = _project(tmp_path, feed_server, smtp_server.port, "skip")
    schedule.run_group(str(config), "", now=_at(7, 0, 2))
    approval.check_holds(str(config), now=_at(8, 29))
    assert [r["status"] for r in _runs(config)] == ["waiting"]
    approval.check_holds(str(config), now=_at(8, 31))
    assert _sent(smtp_server) == []
    [skipped] = _runs(config)
    assert skipped["status"] == "skipped" and "deadline (08:30)" in skipped["note"]
    assert "skipped" in skipped["note"]
    approval.check_holds(str(config), now=_at(8, 40))
    assert _sent(smtp_server) == []


def test_unapproved_at_the_deadline_sends_when_so_configured(
        tmp_path: Path, feed_server: FeedServer, smtp_server: SmtpServer) -> None:
    config = _project(tmp_path, feed_server, smtp_server.port, "send")
    schedule.run_group(str(config), "", now=_at(7, 0, 2))
    assert _sent(smtp_server) == []
    approval.check_holds(str(config), now=_at(8, 31))
    assert _sent(smtp_server) == ["ada@example.org"]
    held, sent = _runs(config)
    assert held["status"] == "released" and "sent anyway" in held["note"]
    assert sent["status"] == "ok"


def test_without_approval_required_nothing_is_held(tmp_path: Path, feed_server: FeedServer,
                                                   smtp_server: SmtpServer) -> None:
    config = make_project(tmp_path, feed_server, smtp_server.port)
    _berlin_only(config)
    schedule.run_group(str(config), "", now=_at(7, 0, 2))
    assert _sent(smtp_server) == ["ada@example.org"]


def test_the_daemon_checks_held_runs_on_a_short_interval(tmp_path: Path,
                                                         feed_server: FeedServer) -> None:
    config = _project(tmp_path, feed_server, 2525, "skip")
    cfg = configuration.load(config)
    pipeline.open_store(cfg).close()  # as Daemon.run does before it starts the scheduler
    daemon = schedule.Daemon(cfg)
    daemon.scheduler.start(paused=True)
    try:
        daemon.reconcile()
        job = daemon.scheduler.get_job(approval.JOB_ID)
        assert job is not None and job.func is approval.check_holds
        assert job.trigger.interval.total_seconds() == approval.APPROVAL_POLL
        # Approval switched off: the check job goes.
        config.write_text(config.read_text().replace('approval = "required"', ""))
        daemon.config = configuration.load(config)
        daemon.reconcile()
        assert daemon.scheduler.get_job(approval.JOB_ID) is None
    finally:
        daemon.scheduler.shutdown(wait=False)
