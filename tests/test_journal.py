"""The journal (digest/store/journal.py) on a real SQLite file, one method at a time,
with injected times: which rows a claim takes and what it writes, what a renewal,
a finish and an orphan release change and for whom, and what the digest and
"what was sent" queries return at their edges (strictly earlier days, sent rows
only). Written from the mutants `make mutate GROUPS=journal` left alive."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from digest.models import Rendered
from digest.store.facade import Finished, Store
from digest.store.schema import deliveries

DAY = date(2025, 3, 14)
T0 = datetime(2025, 3, 14, 7, 0, tzinfo=UTC)
PEOPLE = [f"reader{i:02d}@example.com" for i in range(8)]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "digest.db")
    s.plan_deliveries(DAY, [(e, f"v{i % 2}") for i, e in enumerate(PEOPLE)], now=T0)
    yield s
    s.close()


def row(store: Store, email: str, day: date = DAY) -> dict[str, Any]:
    c = deliveries.c
    with store.begin() as conn:
        return dict(conn.execute(select(deliveries).where(
            (c.day == day.isoformat()) & (c.email == email))).mappings().one())


def set_row(store: Store, email: str, **values: Any) -> None:
    c = deliveries.c
    with store.begin() as conn:
        conn.execute(update(deliveries).where((c.day == DAY.isoformat()) & (c.email == email))
                     .values(**values))


def rendered(variant: str, subject: str = "s") -> Rendered:
    return Rendered(variant=variant, subject=subject, preheader=f"p-{variant}",
                    mjml=f"<mjml>{variant}</mjml>", html=f"<p>{variant}</p>", text=variant)


# -- planning --------------------------------------------------------------------

def test_plan_writes_pending_rows_once_across_its_chunks(tmp_path: Path) -> None:
    s = Store.open(tmp_path / "digest.db")
    try:
        many = [(f"r{i:05d}@example.com", "all") for i in range(10_001)]  # three chunks
        assert s.plan_deliveries(DAY, many, now=T0) == 10_001
        again = [*many[-2:], ("new@example.com", "tech")]
        assert s.plan_deliveries(DAY, again, now=at(60)) == 1  # only the new one
        assert s.plan_deliveries(DAY + timedelta(days=1), many[:1], now=T0) == 1  # per day
        assert s.delivery_counts(DAY)["pending"] == 10_002
        first, new = row(s, many[0][0]), row(s, "new@example.com")
    finally:
        s.close()
    assert (first["status"], first["attempts"], first["variant"], first["updated"]) == \
        ("pending", 0, "all", T0)
    assert (new["variant"], new["updated"]) == ("tech", at(60))
    assert (first["claimed_by"], first["lease_until"], first["next_attempt"]) == (None,) * 3


def test_planning_without_a_time_stamps_the_rows_now(tmp_path: Path) -> None:
    s = Store.open(tmp_path / "digest.db")
    try:
        before = datetime.now(UTC).replace(microsecond=0)
        s.plan_deliveries(DAY, [(PEOPLE[0], "all")])
        updated = row(s, PEOPLE[0])["updated"]
    finally:
        s.close()
    assert before <= updated <= datetime.now(UTC)


# -- claims ----------------------------------------------------------------------

def test_a_claim_takes_due_rows_and_writes_its_holder_and_lease(store: Store) -> None:
    assert store.claim_many(DAY, [], "a", now=T0) == {}
    got = store.claim_many(DAY, PEOPLE[:3], "a", now=at(5), lease=90)
    assert got == {PEOPLE[0]: (0, "v0"), PEOPLE[1]: (0, "v1"), PEOPLE[2]: (0, "v0")}
    r = row(store, PEOPLE[1])
    assert (r["status"], r["claimed_by"], r["claimed_at"], r["lease_until"], r["updated"]) == \
        ("sending", "a", at(5), at(95), at(5))
    assert row(store, PEOPLE[3])["status"] == "pending"  # not asked for
    # The default lease is two minutes.
    store.claim_many(DAY, PEOPLE[3:4], "a", now=T0)
    assert row(store, PEOPLE[3])["lease_until"] == at(120)


def test_which_rows_are_due(store: Store) -> None:
    p = PEOPLE
    set_row(store, p[0], status="deferred", next_attempt=at(100))  # due at 100
    set_row(store, p[1], status="deferred", next_attempt=at(101))  # not yet
    set_row(store, p[2], status="deferred", next_attempt=None)  # due whenever
    set_row(store, p[3], status="sending", claimed_by="x", lease_until=at(100))  # ran out
    set_row(store, p[4], status="sending", claimed_by="x", lease_until=at(101))  # still held
    set_row(store, p[5], status="sending", claimed_by="x", lease_until=None)  # no lease
    set_row(store, p[6], status="sent", attempts=1)
    set_row(store, p[7], status="failed", attempts=3)
    store.plan_deliveries(DAY + timedelta(days=1), [("other@example.com", "v0")], now=T0)
    got = store.claim_many(DAY, [*p, "other@example.com"], "a", now=at(100))
    assert set(got) == {p[0], p[2], p[3], p[5]}
    assert row(store, p[1])["status"] == "deferred"
    assert row(store, p[4])["claimed_by"] == "x"
    assert row(store, "other@example.com", DAY + timedelta(days=1))["status"] == "pending"


def test_a_claim_reports_attempts_so_far(store: Store) -> None:
    set_row(store, PEOPLE[0], status="deferred", attempts=2, next_attempt=T0)
    assert store.claim_many(DAY, PEOPLE[:1], "a", now=T0) == {PEOPLE[0]: (2, "v0")}


# -- renewals and fencing --------------------------------------------------------

def test_a_renewal_extends_only_the_holders_sending_rows(store: Store) -> None:
    store.claim_many(DAY, PEOPLE[:3], "a", now=T0)
    store.claim_many(DAY, PEOPLE[3:5], "b", now=T0)
    store.finish_many(DAY, [Finished(PEOPLE[2], "sent", attempted=True)], "a", now=at(1))
    assert store.renew(DAY, "a", at(500)) == set(PEOPLE[:2])
    assert [row(store, e)["lease_until"] for e in PEOPLE[:5]] == \
        [at(500), at(500), None, at(120), at(120)]
    assert store.renew(DAY + timedelta(days=1), "a", at(900)) == set()
    assert row(store, PEOPLE[0])["lease_until"] == at(500)


def test_finish_many_records_each_outcome_for_its_holder(store: Store) -> None:
    assert store.finish_many(DAY, [], "a", now=T0) == []
    store.claim_many(DAY, PEOPLE[:4], "a", now=T0)
    set_row(store, PEOPLE[1], attempts=2)
    lost = store.finish_many(DAY, [
        Finished(PEOPLE[0], "sent", "<m0@x>", attempted=True),
        Finished(PEOPLE[1], "deferred", None, "451 later", at(300), attempted=True),
        Finished(PEOPLE[2], "pending", error="stopped"),  # handed back untried
        Finished(PEOPLE[5], "sent", "<m5@x>", attempted=True),  # never claimed
        Finished(PEOPLE[3], "failed", None, "550 no", attempted=True),
    ], "a", now=at(7))
    assert lost == [PEOPLE[5]]
    got = {e: row(store, e) for e in PEOPLE[:6]}
    keys = ("status", "message_id", "last_error", "next_attempt", "attempts", "updated",
            "claimed_by", "lease_until")
    assert [tuple(got[e][k] for k in keys) for e in PEOPLE[:4]] == [
        ("sent", "<m0@x>", None, None, 1, at(7), None, None),
        ("deferred", None, "451 later", at(300), 3, at(7), None, None),
        ("pending", None, "stopped", None, 0, at(7), None, None),
        ("failed", None, "550 no", None, 1, at(7), None, None),
    ]
    assert (got[PEOPLE[5]]["status"], got[PEOPLE[5]]["message_id"]) == ("pending", None)
    # Recorded once: the row is no longer 'sending', so a second outcome is refused.
    assert store.finish_many(DAY, [Finished(PEOPLE[0], "failed")], "a", now=at(8)) == \
        [PEOPLE[0]]
    assert row(store, PEOPLE[0])["status"] == "sent"


def test_finish_records_one_outcome_only_for_the_rows_holder(store: Store) -> None:
    """Journal.finish is fenced like finish_many: a row nobody claimed, a row another
    sender holds and a row whose lease another sender took over all refuse it."""
    assert not store.finish(DAY, PEOPLE[0], "sent", holder="a", now=T0)  # nobody holds it
    store.claim_many(DAY, PEOPLE[:1], "a", now=T0, lease=120)
    assert not store.finish(DAY, PEOPLE[0], "sent", holder="b", now=at(1))  # a holds it
    store.claim_many(DAY, PEOPLE[:1], "b", now=at(120))  # a's lease ran out: b takes it
    assert not store.finish(DAY, PEOPLE[0], "sent", holder="a", message_id="<a@x>", now=at(121))
    assert row(store, PEOPLE[0])["status"] == "sending"
    assert store.finish(DAY, PEOPLE[0], "deferred", holder="b", error="451 later",
                        next_attempt=at(400), attempted=True, now=at(122))
    r = row(store, PEOPLE[0])
    assert (r["status"], r["last_error"], r["next_attempt"], r["attempts"], r["updated"],
            r["message_id"], r["claimed_by"]) == \
        ("deferred", "451 later", at(400), 1, at(122), None, None)
    assert not store.finish(DAY, PEOPLE[0], "sent", holder="b", now=at(123))  # done once
    # Not said to be attempted (an admin's verdict): attempts stay as they were.
    store.claim_many(DAY, PEOPLE[1:2], "b", now=at(130))
    assert store.finish(DAY, PEOPLE[1], "sent", holder="b", message_id="<b@x>", now=at(131))
    r = row(store, PEOPLE[1])
    assert (r["status"], r["message_id"], r["attempts"]) == ("sent", "<b@x>", 0)


# -- orphans ---------------------------------------------------------------------

def test_orphans_of_a_dead_holder_come_back_due_now(store: Store) -> None:
    store.claim_many(DAY, PEOPLE[:2], "dead", now=T0)
    store.claim_many(DAY, PEOPLE[2:3], "alive", now=T0)
    set_row(store, PEOPLE[3], status="sending", claimed_by=None)  # no holder to ask about
    set_row(store, PEOPLE[1], attempts=1)
    # Another day's rows: neither released nor their holders asked about.
    store.plan_deliveries(DAY + timedelta(days=1), [(PEOPLE[4], "v0"), (PEOPLE[5], "v0")],
                          now=T0)
    store.claim_many(DAY + timedelta(days=1), PEOPLE[4:5], "dead", now=T0)
    store.claim_many(DAY + timedelta(days=1), PEOPLE[5:6], "elsewhere", now=T0)
    asked: list[str] = []

    def dead(holder: str) -> bool:
        asked.append(holder)
        return holder == "dead"

    assert store.release_orphans(DAY, dead, now=at(30)) == 2
    assert sorted(asked) == ["alive", "dead"]
    r = row(store, PEOPLE[1])
    assert (r["status"], r["next_attempt"], r["updated"], r["claimed_by"], r["lease_until"],
            r["attempts"]) == ("deferred", at(30), at(30), None, None, 1)
    assert r["last_error"] == "the sender stopped mid-send; it may have been delivered"
    assert [row(store, e)["status"] for e in PEOPLE[2:4]] == ["sending", "sending"]
    assert [row(store, e, DAY + timedelta(days=1))["claimed_by"] for e in PEOPLE[4:6]] == \
        ["dead", "elsewhere"]
    assert store.release_orphans(DAY, lambda _: False, now=at(31)) == 0
    assert row(store, PEOPLE[2])["updated"] == T0


# -- counts, rows, the hourly window ------------------------------------------------

def test_counts_rows_and_sends_since(store: Store) -> None:
    store.claim_many(DAY, PEOPLE[:5], "a", now=T0)
    store.finish_many(DAY, [Finished(PEOPLE[0], "sent", "<0@x>", attempted=True),
                            Finished(PEOPLE[1], "failed", None, "550", attempted=True),
                            Finished(PEOPLE[2], "deferred", None, "451", at(60), True)],
                      "a", now=at(10))
    store.finish_many(DAY, [Finished(PEOPLE[3], "sent", "<3@x>", attempted=True)], "a",
                      now=at(20))
    other = DAY + timedelta(days=1)
    store.plan_deliveries(other, [(e, "v0") for e in reversed(PEOPLE[:3])], now=T0)
    store.claim_many(other, PEOPLE[:1], "a", now=T0)
    store.finish_many(other, [Finished(PEOPLE[0], "sent", attempted=True)], "a", now=at(30))
    assert store.delivery_counts(DAY) == {"pending": 3, "sending": 1, "sent": 2, "failed": 1,
                                          "deferred": 1}
    assert store.delivery_counts(date(2020, 1, 1)) == dict.fromkeys(
        ("pending", "sending", "sent", "failed", "deferred"), 0)
    # Any day's sends, strictly after the time given, sent ones only.
    assert sorted(store.sent_since(at(10))) == [at(20), at(30)]
    assert sorted(store.sent_since(at(9))) == [at(10), at(20), at(30)]
    got = store.deliveries(DAY)
    assert [d.email for d in got] == PEOPLE  # in planning order
    assert [d.email for d in store.deliveries(other)] == list(reversed(PEOPLE[:3]))  # not by name
    d = got[2]
    assert (d.day, d.status, d.variant, d.attempts, d.message_id, d.last_error, d.updated) == \
        (DAY, "deferred", "v0", 1, None, "451", at(10))
    assert (got[0].message_id, got[1].variant) == ("<0@x>", "v1")


# -- digests and what was sent ---------------------------------------------------

def test_a_frozen_digest_is_kept_as_first_saved(tmp_path: Path) -> None:
    s = Store.open(tmp_path / "digest.db")
    try:
        assert s.digest_frozen(DAY) is None and s.load_digest(DAY) == []
        s.save_digest(DAY, [rendered("tech"), rendered("all")], [9, 3, 2, 3], now=T0)
        s.save_digest(DAY, [rendered("all", "changed"), rendered("zz")], [2], now=at(60))
        s.save_digest(DAY - timedelta(days=1), [rendered("all")], [9], now=at(-86400))
        # In the order saved, not by name; the ids sorted.
        assert s.load_digest(DAY) == [rendered("tech"), rendered("all"), rendered("zz")]
        assert s.digest_frozen(DAY) == (T0, (2, 3, 9))
        assert s.digest_days() == [DAY, DAY - timedelta(days=1)]
    finally:
        s.close()


def test_what_was_sent_counts_earlier_days_and_sent_rows_only(tmp_path: Path) -> None:
    s = Store.open(tmp_path / "digest.db")
    d1, d2, d3 = DAY - timedelta(days=2), DAY - timedelta(days=1), DAY
    try:
        s.save_digest(d1, [rendered("all")], [1, 2, 3, 4], now=T0)
        s.save_digest(d2, [rendered("all"), rendered("tech")], [5, 6, 7], now=T0)
        s.save_digest(d3, [rendered("all")], [8], now=T0)
        # d1 was saved before variants were recorded: its whole digest counts.
        s.save_variant_articles(d2, {"all": [5, 6, 5], "tech": [7]})
        s.save_variant_articles(d2, {"all": [6]})  # again: nothing doubles, nothing fails
        s.save_variant_articles(d3, {"all": [8]})
        for day, people in ((d1, [("ada@x.org", "all"), ("bob@x.org", "all")]),
                            (d2, [("ada@x.org", "tech"), ("bob@x.org", "all"),
                                  ("cy@x.org", "all")]),
                            (d3, [("ada@x.org", "all")])):
            s.plan_deliveries(day, people, now=T0)
            s.claim_many(day, [e for e, _ in people], "h", now=T0)
        s.finish_many(d1, [Finished("ada@x.org", "sent"), Finished("bob@x.org", "failed")],
                      "h", now=T0)
        s.finish_many(d2, [Finished("ada@x.org", "sent"), Finished("bob@x.org", "sent"),
                           Finished("cy@x.org", "deferred")], "h", now=T0)
        s.finish_many(d3, [Finished("ada@x.org", "sent")], "h", now=T0)

        assert s.sent_to(["ada@x.org"], before=d3) == {1, 2, 3, 4, 7}
        assert s.sent_to(["bob@x.org"], before=d3) == {5, 6}  # d1 failed
        assert s.sent_to(["cy@x.org"], before=d3) == set()  # deferred is not sent
        assert s.sent_to(["ada@x.org"], before=d2) == {1, 2, 3, 4}  # strictly earlier
        assert s.sent_to(["ada@x.org", "bob@x.org", "ada@x.org"], before=d3) == \
            {1, 2, 3, 4, 5, 6, 7}
        assert s.sent_to(["ada@x.org"], before=DAY + timedelta(days=1)) == {1, 2, 3, 4, 7, 8}
        assert s.sent_to([], before=d3) == set()
        # Every article of a digest of a strictly earlier day, sent or not.
        assert s.sent_article_ids(d3) == {1, 2, 3, 4, 5, 6, 7}
        assert s.sent_article_ids(d2) == {1, 2, 3, 4}
    finally:
        s.close()
