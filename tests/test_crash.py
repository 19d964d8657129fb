"""SIGKILL the sender at random moments during a 2,000-subscriber send, at least ten
times, resuming each time: nobody is lost, every duplicate is a message that was in
flight (its journal row still 'sending') at one of the kills, and there are no more
duplicates than the design allows: at each kill, a message in a transaction on each
connection plus the replies of one commit wait at the sender's rate."""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from digest.store.facade import Store
from tests.crash_sender import CONNECTIONS, RATE, people
from tests.peers import SmtpServer
from tests.test_send import DAY

REPO = Path(__file__).resolve().parent.parent
N = 2000
KILLS = 10
# What a kill can repeat, by design (tests/crash_sender.py sends over CONNECTIONS at
# RATE a second; digest.send.tasks group-commits replies within COMMIT_WAIT): the
# message in a transaction on each connection and the replies still waiting for
# their commit. COMMIT_WAIT is written here, not imported: a longer commit wait must
# fail the test (tenfold, 107 duplicates in 10 kills here, against 32-43).
COMMIT_WAIT = 0.005
PER_KILL = CONNECTIONS + math.ceil(RATE * COMMIT_WAIT)


def start(db: Path, port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.crash_sender", str(db), str(port),
                             str(N)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "sending"
    return proc


def signers_left(wait: float = 5.0) -> list[str]:
    """digest.mail.dkim_worker processes still alive after ``wait`` seconds (each should
    see EOF on its stdin once its sender is gone, and exit)."""
    deadline = time.monotonic() + wait
    while True:
        alive = [p.name for p in Path("/proc").iterdir() if p.name.isdigit()
                 and b"digest.mail.dkim_worker" in _cmdline(p)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


def test_sigkill_loses_nobody_and_repeats_only_messages_in_flight(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(20251)
    db = tmp_path / "digest.db"
    store = Store.open(db)
    everyone = people(N)
    store.plan_deliveries(DAY, [(e, "all") for e in everyone])
    in_flight: list[set[str]] = []
    with SmtpServer() as server:
        while len(in_flight) < KILLS:
            proc = start(db, server.port)
            time.sleep(rng.uniform(0.0, 0.6))
            assert proc.poll() is None, "the sender finished before it could be killed"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            in_flight.append({d.email for d in store.deliveries(DAY) if d.status == "sending"})
        sent_before_last = sum(d.status == "sent" for d in store.deliveries(DAY))
        final = start(db, server.port)
        out, _ = final.communicate(timeout=120)
        assert final.returncode == 0, out
        time.sleep(0.2)  # the server may still be finishing the last reply
        copies = Counter(r.rcpt_tos[0] for r in server.received)

    rows = store.deliveries(DAY)
    store.close()
    assert not signers_left(), "a killed sender left its DKIM signing process behind"
    assert set(copies) == set(everyone)  # nobody lost
    assert {d.status for d in rows} == {"sent"}
    duplicated = {e: n - 1 for e, n in copies.items() if n > 1}
    held = set().union(*in_flight)
    assert set(duplicated) <= held  # only a message in flight at a kill can repeat
    for at_kill in in_flight:
        assert sum(duplicated.get(e, 0) for e in at_kill) <= len(at_kill)
    total_dups = sum(duplicated.values())
    assert total_dups <= sum(len(s) for s in in_flight)
    # Averaged over the kills: one kill may land on a burst (the rate limiter lets a
    # tenth of a second's worth go at once), the total may not.
    assert total_dups <= KILLS * PER_KILL, f"{total_dups} duplicates in {KILLS} kills"
    assert 0 < sent_before_last < N  # the kills landed mid-send
    with capsys.disabled():
        print(f"\ncrash test: {KILLS} SIGKILLs during a {N:,}-subscriber send; "
              f"in flight at the kills {sum(len(s) for s in in_flight)} "
              f"(max {max(len(s) for s in in_flight)}); duplicates {total_dups} "
              f"(at most {KILLS * PER_KILL}); lost 0; "
              f"{sent_before_last:,} sent before the final run")
