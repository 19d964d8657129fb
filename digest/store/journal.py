"""Digests and the delivery journal: each day's frozen digest and the articles each
variant carried, and one row per recipient (plan, claim, finish) so a crash or a
rerun never loses or repeats anyone."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select, update

from digest.models import Delivery, DeliveryStatus, Rendered
from digest.store.base import Base, utc_now
from digest.store.schema import (
    deliveries,
    digest_articles,
    digests,
    stored_now,
    stored_time,
    variant_articles,
)


@dataclass(frozen=True)
class Finished:
    """The outcome of one claimed delivery, for ``Store.finish_many``."""

    email: str
    status: DeliveryStatus
    message_id: str | None = None
    error: str | None = None
    next_attempt: datetime | None = None
    #: an SMTP transaction was tried for it (attempts counts those, not claims)
    attempted: bool = False


@dataclass(frozen=True)
class FrozenVariant:
    """One stored variant of a frozen day's digest, as the archive reads it."""

    day: date
    frozen: datetime  # when it was saved: sending began
    rendered: Rendered


class Journal(Base):
    """Frozen digests, what they carried, and who was sent what."""

    # -- what was sent ------------------------------------------------------
    def sent_article_ids(self, before: date) -> set[int]:
        """Articles that went out in a digest of an earlier day."""
        q = select(digest_articles.c.article_id).where(digest_articles.c.day < before.isoformat())
        with self.begin() as conn:
            return {int(r[0]) for r in conn.execute(q)}

    def save_variant_articles(self, day: date, carried: Mapping[str, Iterable[int]]) -> None:
        """Remember which articles each variant of a day's digest carries."""
        with self.begin() as conn:
            for variant, ids in carried.items():
                for aid in set(ids):
                    conn.execute(self.dialect.insert(variant_articles).values(
                        day=day.isoformat(), variant=variant, article_id=aid,
                    ).on_conflict_do_nothing())

    def sent_to(self, emails: Iterable[str], before: date) -> set[int]:
        """Articles a digest of an earlier day was actually sent to any of ``emails``.

        A sent delivery counts with its variant's articles; for a day saved before
        variants were recorded, with every article of that day's digest.
        """
        wanted = sorted(set(emails))
        if not wanted:
            return set()
        out: set[int] = set()
        with self.begin() as conn:
            sent = conn.execute(
                select(deliveries.c.day, deliveries.c.variant).distinct()
                .where(deliveries.c.email.in_(wanted) & (deliveries.c.status == "sent")
                       & (deliveries.c.day < before.isoformat()))).all()
            for day, variant in sent:
                ids = {int(r[0]) for r in conn.execute(
                    select(variant_articles.c.article_id).where(
                        (variant_articles.c.day == day) & (variant_articles.c.variant == variant)))}
                if not ids:
                    ids = {int(r[0]) for r in conn.execute(
                        select(digest_articles.c.article_id).where(digest_articles.c.day == day))}
                out |= ids
        return out

    # -- digests -----------------------------------------------------------
    def save_digest(self, day: date, variants: Sequence[Rendered], article_ids: Iterable[int],
                    now: datetime | None = None) -> None:
        """Freeze a day's digest: its variants and the articles it carries.

        Once saved, a rerun the same day sends this exact digest, not a new ranking.
        """
        now = now or utc_now()
        with self.begin() as conn:
            for r in variants:
                conn.execute(self.dialect.insert(digests).values(
                    day=day.isoformat(), variant=r.variant, subject=r.subject,
                    preheader=r.preheader, mjml=r.mjml, html=r.html, text=r.text, created=now,
                ).on_conflict_do_nothing())
            for aid in set(article_ids):
                conn.execute(self.dialect.insert(digest_articles).values(
                    day=day.isoformat(), article_id=aid).on_conflict_do_nothing())

    def load_digest(self, day: date) -> list[Rendered]:
        q = select(digests).where(digests.c.day == day.isoformat()).order_by(digests.c.id)
        with self.begin() as conn:
            rows = conn.execute(q).mappings().all()
        return [Rendered(variant=r["variant"], subject=r["subject"], preheader=r["preheader"],
                         mjml=r["mjml"], html=r["html"], text=r["text"]) for r in rows]

    def digest_frozen(self, day: date) -> tuple[datetime, tuple[int, ...]] | None:
        """When the day's digest was frozen (its first variant saved) and the ids of
        the articles it carries (every group's); None while it is not frozen."""
        with self.begin() as conn:
            when = conn.execute(select(func.min(digests.c.created))
                                .where(digests.c.day == day.isoformat())).scalar()
            if when is None:
                return None
            ids = conn.execute(select(digest_articles.c.article_id)
                               .where(digest_articles.c.day == day.isoformat())
                               .order_by(digest_articles.c.article_id)).scalars().all()
        return when, tuple(int(i) for i in ids)

    def digest_days(self) -> list[date]:
        q = select(digests.c.day).distinct().order_by(digests.c.day.desc())
        with self.begin() as conn:
            return [date.fromisoformat(r[0]) for r in conn.execute(q)]

    def frozen_variants(self, days: int, skip: int = 0) -> list[FrozenVariant]:
        """Every stored variant of the ``days`` newest frozen days after the ``skip``
        newest, newest day first (one archive page, in one query). What a web page
        shows only: the MJML source and the text part are left empty."""
        c = digests.c
        page = (select(c.day).distinct().order_by(c.day.desc())
                .limit(days).offset(skip).scalar_subquery())
        q = (select(c.day, c.variant, c.subject, c.preheader, c.html, c.created)
             .where(c.day.in_(page)).order_by(c.day.desc(), c.id))
        with self.begin() as conn:
            rows = conn.execute(q).mappings().all()
        return [FrozenVariant(
            day=date.fromisoformat(r["day"]), frozen=r["created"],
            rendered=Rendered(variant=r["variant"], subject=r["subject"],
                              preheader=r["preheader"], mjml="", html=r["html"], text=""))
            for r in rows]

    # -- delivery journal --------------------------------------------------
    def plan_deliveries(self, day: date, recipients: Sequence[tuple[str, str]],
                        now: datetime | None = None) -> int:
        """Write a pending row per (email, variant) in one transaction; return rows added.

        Existing rows are left alone, so planning twice never re-queues anyone.
        """
        now = now or utc_now()
        stmt = self.dialect.insert(deliveries).on_conflict_do_nothing()
        count = select(func.count()).select_from(deliveries).where(
            deliveries.c.day == day.isoformat())
        with self.begin() as conn:
            before = int(conn.execute(count).scalar_one())
            # executemany in chunks: one statement per row costs ~0.3 ms (30 s for 100k).
            for i in range(0, len(recipients), 5000):
                conn.execute(stmt, [
                    {"day": day.isoformat(), "email": email, "variant": variant,
                     "status": "pending", "attempts": 0, "updated": now}
                    for email, variant in recipients[i:i + 5000]])
            return int(conn.execute(count).scalar_one()) - before

    def finish(self, day: date, email: str, status: DeliveryStatus, *, holder: str,
               message_id: str | None = None, error: str | None = None,
               next_attempt: datetime | None = None, attempted: bool = False,
               now: datetime | None = None) -> bool:
        """Record one row's outcome, only if ``holder`` still holds it (fenced like
        ``finish_many``, one row); return whether it was recorded. A row never claimed
        has no holder: claim it first."""
        row = Finished(email, status, message_id, error, next_attempt, attempted=attempted)
        return not self.finish_many(day, [row], holder, now=now)

    def claim_many(self, day: date, emails: Sequence[str], holder: str,
                   now: datetime | None = None,
                   lease: float = 120.0) -> dict[str, tuple[int, str]]:
        """Claim a batch in one transaction for ``holder`` (a token unique to one sender
        run) until ``now + lease``: {email: (attempts so far, variant)} of those taken.

        Due rows are pending ones, deferred ones whose time has come, and 'sending'
        ones whose lease ran out (whoever held them, alive or not).
        """
        if not emails:
            return {}
        now = now or utc_now()
        # Plain SQL on the sender's hot path: building the SQLAlchemy statement cost
        # more than the commit. Times are compared as the ISO text UTCDateTime stores.
        at, until = stored_now(now), stored_now(now + timedelta(seconds=lease))
        sql = self.dialect.claim(len(emails))
        with self.begin() as conn:
            rows = conn.exec_driver_sql(sql, (holder, at, until, at, day.isoformat(), *emails,
                                              at, at)).all()
        return {r[0]: (int(r[1]), str(r[2])) for r in rows}

    def renew(self, day: date, holder: str, until: datetime) -> set[str]:
        """Extend ``holder``'s lease on the rows it still holds to ``until``; return
        them. A row it claimed and is not among them was taken: it must not be sent."""
        with self.begin() as conn:
            rows = conn.exec_driver_sql(self.dialect.renew,
                                        (stored_now(until), day.isoformat(), holder)).all()
        return {str(r[0]) for r in rows}

    def finish_many(self, day: date, rows: Sequence[Finished], holder: str,
                    now: datetime | None = None) -> list[str]:
        """Record outcomes in one transaction (the sender's group commit), each only if
        ``holder`` still holds its row; return the emails it no longer held."""
        if not rows:
            return []
        at, d = stored_now(now or utc_now()), day.isoformat()
        params = [(r.status, r.message_id, r.error, stored_time(r.next_attempt), at,
                   int(r.attempted), d, r.email, holder) for r in rows]
        lost: list[str] = []
        with self.begin() as conn:
            # One statement per row, not executemany: each row's count says whether
            # the holder still had it.
            for r, p in zip(rows, params, strict=True):
                if conn.exec_driver_sql(self.dialect.finish, p).rowcount != 1:
                    lost.append(r.email)
        return lost

    def release_orphans(self, day: date, dead: Callable[[str], bool],
                        now: datetime | None = None) -> int:
        """Rows left 'sending' by a sender that ``dead(claimed_by)`` says is gone: due now.

        They may or may not have reached the server (the crash window), so they go
        back as deferred-due-now rather than waiting out their lease. Their attempts
        stay as they were: whether the server got the message is not known.
        """
        now = now or utc_now()
        c = deliveries.c
        with self.begin() as conn:
            held = conn.execute(select(c.claimed_by).distinct().where(
                (c.day == day.isoformat()) & (c.status == "sending"))).scalars().all()
            gone = [w for w in held if w and dead(w)]
            if not gone:
                return 0
            res = conn.execute(update(deliveries).where(
                (c.day == day.isoformat()) & (c.status == "sending") & c.claimed_by.in_(gone)
            ).values(status="deferred", next_attempt=now, updated=now, claimed_by=None,
                     lease_until=None,
                     last_error="the sender stopped mid-send; it may have been delivered"))
            return int(res.rowcount or 0)

    def sent_since(self, since: datetime) -> list[datetime]:
        """When each message of any day was sent after ``since`` (the hourly rate limit)."""
        c = deliveries.c
        q = select(c.updated).where((c.status == "sent") & (c.updated > since))
        with self.begin() as conn:
            return [t for t in conn.execute(q).scalars() if t is not None]

    def delivery_counts(self, day: date) -> dict[str, int]:
        """{status: rows} of a day's journal, every status present (for status/progress)."""
        c = deliveries.c
        q = select(c.status, func.count()).where(c.day == day.isoformat()).group_by(c.status)
        counts = dict.fromkeys(("pending", "sending", "sent", "failed", "deferred"), 0)
        with self.begin() as conn:
            counts.update({str(s): int(n) for s, n in conn.execute(q)})
        return counts

    def deliveries(self, day: date) -> list[Delivery]:
        q = select(deliveries).where(deliveries.c.day == day.isoformat()).order_by(deliveries.c.id)
        with self.begin() as conn:
            rows = conn.execute(q).mappings().all()
        return [Delivery(day=day, email=r["email"], status=r["status"], variant=r["variant"],
                         attempts=r["attempts"], message_id=r["message_id"],
                         last_error=r["last_error"], updated=r["updated"]) for r in rows]
