"""Collect benchmark: the 50-feed corpus served on loopback.

Times, in one process: a cold `collect` (empty store), a warm one (every feed
answers 304), and a baseline that fetches each feed one after another and parses
it with plain `feedparser.parse`. Prints the figures and the cold speed-up. Every
timed side is the best of --rounds runs, the baseline too: a ratio of a best run
to a single one would flatter us by the machine's run-to-run swing.

The server runs in a child process so its Python does not share our GIL: it
stands in for the network, not for work the collector has to do.

    .venv/bin/python bench/collect.py [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import multiprocessing
import os
import resource
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "feeds"
sys.path.insert(0, str(ROOT))

from bench._procs import descendants, pss_mb  # noqa: E402

TARGET_RATIO = 20.0
TARGET_COLD = 1.5
TARGET_WARM = 0.3
TARGET_MB = 200
# The 50 documents stand for 50 sites, but all sit on one loopback host: the
# per-host limit (2 by default, for politeness) is raised to the global one here.
PER_HOST = 16


def _serve(root: str, port_out: Any) -> None:
    files = {f"/{p.name}": p.read_bytes() for p in Path(root).iterdir() if p.is_file()}
    tags = {path: '"' + hashlib.sha1(body).hexdigest()[:16] + '"' for path, body in files.items()}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real server would

        def do_GET(self) -> None:
            body = files.get(self.path)
            if body is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.headers.get("If-None-Match") == tags[self.path]:
                self.send_response(304)
                self.send_header("ETag", tags[self.path])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/xml")
            self.send_header("ETag", tags[self.path])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        # socketserver's default backlog is 5: sixteen simultaneous connects would
        # overflow it, and each dropped SYN costs the client a 1 s retransmit.
        request_queue_size = 128
        daemon_threads = True

    httpd = Server(("127.0.0.1", 0), Handler)
    port_out.put(httpd.server_address[1])
    httpd.serve_forever()


def baseline(urls: list[str]) -> tuple[float, float, int]:
    """Sequential fetch + feedparser.parse, the way a simple script does it."""
    import feedparser
    import httpx

    started, cpu = time.perf_counter(), time.process_time()
    items = 0
    with httpx.Client() as client:
        for url in urls:
            body = client.get(url).content
            items += len(feedparser.parse(body).entries)
    return time.perf_counter() - started, time.process_time() - cpu, items


def _children_cpu() -> float:
    """CPU of reaped child processes: the parse workers, once a collect has ended."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def peak_memory(urls: list[str], db: Path, server_pid: int) -> float:
    """Peak total memory (MB) of a cold collect: this process and its parse workers,
    sampled every 20 ms in a run of its own, so the sampling costs no timed run.
    Not counted: the bench's own helpers, the server and multiprocessing's resource
    tracker (started for the server's queue)."""
    from multiprocessing import resource_tracker

    skip = {server_pid, getattr(resource_tracker._resource_tracker, "_pid", None) or 0}
    peak = 0.0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.02):
            peak = max(peak, sum(pss_mb(p) for p in descendants(os.getpid(), skip)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        ours(urls, db)
    finally:
        done.set()
        sampler.join()
    return peak


def parsing_alone(names: list[str]) -> float:
    """Wall time of the parse step by itself: every document already in memory,
    handed to the collector's worker processes, nothing fetched or stored. A cold
    collect cannot beat this, so baseline / this is the ratio's ceiling here."""
    from digest.collect.pool import ParsePool
    from digest.models import Feed

    docs = [(n, (CORPUS / n).read_bytes()) for n in names]
    now = datetime.now(UTC)

    async def run() -> None:
        pool = ParsePool()
        pool.start()
        try:
            await asyncio.gather(*(
                pool.parse(body, Feed(url=f"http://127.0.0.1/{n}", name=n), now=now,
                           known=set(), base_url=f"http://127.0.0.1/{n}",
                           content_type="application/xml") for n, body in docs))
        finally:
            await pool.close()

    started = time.perf_counter()
    asyncio.run(run())
    return time.perf_counter() - started


def ours(urls: list[str], db: Path) -> tuple[float, float, int, int, float]:
    from digest.collect.collector import collect
    from digest.models import Feed
    from digest.store.facade import Store

    feeds = [Feed(url=u, name=u.rsplit("/", 1)[-1]) for u in urls]
    store = Store.open(db)
    now = datetime.now(UTC)
    try:
        started, cpu = time.perf_counter(), time.process_time() + _children_cpu()
        cold = asyncio.run(collect(feeds, store, now=now, per_host=PER_HOST))
        cold_s = time.perf_counter() - started
        cold_cpu = time.process_time() + _children_cpu() - cpu
        started = time.perf_counter()
        warm = asyncio.run(collect(feeds, store, now=now, per_host=PER_HOST))
        warm_s = time.perf_counter() - started
    finally:
        store.close()
    bad = [r for r in cold if r.status != "ok"] + [r for r in warm if r.status != "not_modified"]
    if bad:
        raise SystemExit(f"unexpected results: {bad[:3]}")
    return cold_s, warm_s, sum(r.items for r in cold), sum(r.new for r in cold), cold_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3,
                        help="best of N, for our runs and the baseline's alike")
    args = parser.parse_args()
    if not CORPUS.is_dir():
        raise SystemExit(f"corpus missing at {CORPUS}")
    names = sorted(p.name for p in CORPUS.iterdir() if p.is_file())
    ctx = multiprocessing.get_context("spawn")
    port_q = ctx.Queue()
    server = ctx.Process(target=_serve, args=(str(CORPUS), port_q), daemon=True)
    server.start()
    try:
        port = port_q.get(timeout=30)
        urls = [f"http://127.0.0.1:{port}/{n}" for n in names]
        # Warm-up imports (lxml, nh3, feedparser, SQLAlchemy) outside the timings.
        import digest.collect.collector  # noqa: F401

        runs = []
        for i in range(max(1, args.rounds)):
            with tempfile.TemporaryDirectory() as tmp:
                runs.append(ours(urls, Path(tmp) / f"bench{i}.db"))
        cold_s = min(r[0] for r in runs)
        warm_s = min(r[1] for r in runs)
        items, new = runs[0][2], runs[0][3]
        with tempfile.TemporaryDirectory() as tmp:
            peak_mb = peak_memory(urls, Path(tmp) / "memory.db", server.pid or 0)
        parse_s = min(parsing_alone(names) for _ in range(max(1, args.rounds)))
        bases = [baseline(urls) for _ in range(max(1, args.rounds))]
        base_s = min(b[0] for b in bases)
        base_cpu = min(b[1] for b in bases)
        base_items = bases[0][2]
    finally:
        server.terminate()
        server.join(5)
    ratio = base_s / cold_s
    size = sum((CORPUS / n).stat().st_size for n in names) / 2**20
    print(f"corpus: {len(names)} feeds, {size:.1f} MB")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    print(f"method: every timed figure is the best of {len(runs)} runs, the baseline's too "
          "(like with like)")
    print(f"baseline (sequential fetch + feedparser.parse, best of {len(bases)}): {base_s:.2f} s "
          f"({base_cpu:.2f} s CPU), {base_items} items")
    print(f"  every baseline run: {', '.join(f'{b[0]:.2f}' for b in bases)} s")
    print(f"cold collect (empty store, best of {len(runs)}): {cold_s:.3f} s, {items} items, "
          f"{new} new   [target < {TARGET_COLD} s]")
    print(f"  every cold run: {', '.join(f'{r[0]:.3f}' for r in runs)} s; CPU (this "
          f"process and its parse workers): {', '.join(f'{r[4]:.2f}' for r in runs)} s")
    print(f"warm collect (all 304, best of {len(runs)}): {warm_s:.3f} s   "
          f"[target < {TARGET_WARM} s]")
    from digest.collect.pool import default_workers

    print(f"peak memory of a cold collect (PSS of this process and its {default_workers()} "
          f"parse workers): {peak_mb:.0f} MB   [target < {TARGET_MB} MB]")
    print(f"ratio: cold collect is {ratio:.1f}x the baseline   [target >= {TARGET_RATIO:g}x]")
    print(f"parsing alone (documents in memory, {default_workers()} workers, nothing fetched "
          f"or stored, best of {max(1, args.rounds)}): {parse_s:.3f} s, so no collect here "
          f"can beat {base_s / parse_s:.1f}x")
    best_cpu = min(r[4] for r in runs)
    print(f"CPU ratio (less sensitive to other load; least CPU of {len(runs)} on each side): "
          f"baseline {base_cpu:.2f} s / cold {best_cpu:.2f} s = {base_cpu / best_cpu:.1f}x")


if __name__ == "__main__":
    main()
