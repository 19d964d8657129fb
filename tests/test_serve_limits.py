"""`digest serve` against hostile or unlucky clients: slow senders, too many
connections, a subscriber file or database held by another process, clients that
hang up. The real `digest serve` in a subprocess where a user meets it; the app
under uvicorn in a thread where the test must see inside the server."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import selectors
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from digest import config as configuration
from digest import pipeline
from digest.config import Config
from digest.mail import tokens
from digest.web import serve
from tests.peers import FeedServer, free_port
from tests.test_e2e import make_project

ONE_CLICK = b"List-Unsubscribe=One-Click"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
ADA = "ada@example.org"


@pytest.fixture
def project(tmp_path: Path, feed_server: FeedServer) -> Path:
    return make_project(tmp_path, feed_server, free_port())


def limits(config_path: Path, **values: float) -> Path:
    """config.toml with these [serve] settings (each key appears once, in [serve])."""
    text = config_path.read_text()
    for key, value in values.items():
        text, found = re.subn(rf"(?m)^{key} = \S+", f"{key} = {value}", text)
        assert found == 1, key
    config_path.write_text(text)
    return config_path


def subscribers_file(config_path: Path) -> Path:
    return config_path.parent / "subscribers" / "subscribers.toml"


def unsubscribe_path(config: Config, email: str = ADA) -> str:
    # DIGEST_SECRET is "test-secret" in every test (conftest).
    return f"/unsubscribe/{tokens.make('test-secret', email, config.newsletter.list_id)}"


# -- servers --------------------------------------------------------------------------

class ServeProcess:
    """`digest serve` as a user starts it, on a free loopback port."""

    def __init__(self, config_path: Path) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "digest", "--config", str(config_path), "serve",
             "--port", str(self.port)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=config_path.parent)
        self.stderr = ""

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> ServeProcess:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # printed once the socket listens
        assert line.startswith("serving "), (line, self.proc.stderr and self.proc.stderr.read())
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.send_signal(signal.SIGTERM)
        _, self.stderr = self.proc.communicate(timeout=30)


class Threaded:
    """serve.server(config) (the settings `digest serve` runs with) in a thread."""

    def __init__(self, config: Config) -> None:
        self.sock = serve.listen("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.server = serve.server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> Threaded:
        self.thread.start()
        _until(lambda: self.server.started or not self.thread.is_alive())
        assert self.server.started, "server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(20)
        self.sock.close()


def _until(condition: Callable[[], bool], within: float = 20.0) -> None:
    """Wait for a condition the test cannot be told about (a bound, not a timing)."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


# -- slow clients ---------------------------------------------------------------------

def _connect(port: int, first: bytes = b"") -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    if first:
        s.sendall(first)
    return s


class Dribble:
    """Send each socket one more byte every 50 ms (a slowloris), until stopped."""

    def __init__(self, socks: list[socket.socket]) -> None:
        self.socks = socks
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(0.05):
            for s in self.socks:
                with contextlib.suppress(OSError):  # closed by the server: the test waits for it
                    s.send(b"x")

    def __enter__(self) -> Dribble:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)


def wait_closed(socks: list[socket.socket], within: float = 30.0) -> dict[socket.socket, bytes]:
    """Read every socket until the server closes it; what each received."""
    got = {s: b"" for s in socks}
    with selectors.DefaultSelector() as sel:
        for s in socks:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
        deadline = time.monotonic() + within
        while sel.get_map():
            left = deadline - time.monotonic()
            assert left > 0, f"{len(sel.get_map())} of {len(socks)} connections still held"
            for key, _ in sel.select(left):
                s = key.fileobj
                assert isinstance(s, socket.socket)
                try:
                    data = s.recv(65536)
                except ConnectionResetError:
                    data = b""
                if data:
                    got[s] += data
                else:
                    sel.unregister(s)
    return got


def test_slow_clients_are_dropped_while_healthz_answers(project: Path) -> None:
    config = limits(project, header_timeout=1, body_timeout=1)
    with ServeProcess(config) as server:
        slow_headers = [_connect(server.port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-")
                        for _ in range(100)]
        slow_bodies = [_connect(server.port, b"POST /unsubscribe/x HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                b"Content-Type: application/x-www-form-urlencoded\r\n"
                                b"Content-Length: 100000\r\n\r\n") for _ in range(20)]
        try:
            with Dribble(slow_headers + slow_bodies):
                # 120 slowloris connections take nothing from a normal client.
                health = httpx.get(server.url("/healthz"), timeout=10)
                assert health.status_code == 200 and health.text == "ok\n"
                got = wait_closed(slow_headers + slow_bodies)
        finally:
            for s in slow_headers + slow_bodies:
                s.close()
        assert all(got[s].startswith(b"HTTP/1.1 408 Request Timeout\r\n") for s in slow_headers)
        assert httpx.get(server.url("/healthz"), timeout=10).status_code == 200
    assert "Traceback" not in server.stderr and "ERROR" not in server.stderr, server.stderr


def test_connections_beyond_the_cap_get_503_until_they_go(project: Path) -> None:
    config = limits(project, header_timeout=1, max_connections=10)
    with ServeProcess(config) as server:
        idle = [_connect(server.port) for _ in range(12)]
        try:
            full = httpx.get(server.url("/healthz"), timeout=10)
            assert full.status_code == 503 and full.text == "Service Unavailable"
            wait_closed(idle)  # the header deadline frees them
        finally:
            for s in idle:
                s.close()
        assert httpx.get(server.url("/healthz"), timeout=10).status_code == 200
    assert "Traceback" not in server.stderr, server.stderr


# -- locks ------------------------------------------------------------------------------

@pytest.fixture
def held_file(project: Path) -> Iterator[Callable[[], None]]:
    """The subscribers folder flock-ed as `digest subscribers add` holds it (see
    digest.subscribers.lock.folder_lock); call to release."""
    fd = os.open(subscribers_file(project).parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield lambda: fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def test_locked_subscriber_file_answers_within_the_bound_and_catches_up(
        project: Path, held_file: Callable[[], None]) -> None:
    # The suppression is what stops the mail, and it is recorded at once: the reader
    # is told so within busy_timeout, and the file is written once the lock is free.
    config = configuration.load(limits(project, busy_timeout=0.5))
    file = subscribers_file(project)
    before = file.read_bytes()
    with Threaded(config) as server, httpx.Client(timeout=10) as http:
        busy = http.post(server.url(unsubscribe_path(config)), content=ONE_CLICK, headers=FORM)
        assert busy.status_code == 200 and "gets no more emails" in busy.text
        assert file.read_bytes() == before
        assert suppressed(config) == {ADA}
        assert http.get(server.url("/healthz")).status_code == 200

        held_file()  # the other process is done: the next unsubscribe catches up
        other = unsubscribe_path(config, "grace@example.com")
        assert http.post(server.url(other), content=ONE_CLICK, headers=FORM).status_code == 200
    after = file.read_text()
    for address in (ADA, "grace@example.com"):
        entry = after.split(f'email = "{address}"', 1)[1].split("[[subscriber]]", 1)[0]
        assert 'status = "unsubscribed"' in entry, entry


def test_locked_database_is_503_with_retry_after(project: Path) -> None:
    config = configuration.load(limits(project, busy_timeout=0.5))
    url = unsubscribe_path(config)
    with Threaded(config) as server, httpx.Client(timeout=10) as http:
        other = sqlite3.connect(config.db_path, isolation_level=None)
        try:
            other.execute("BEGIN EXCLUSIVE")  # another process writing, for a long time
            busy = http.post(server.url(url), content=ONE_CLICK, headers=FORM)
            assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
            assert http.get(server.url("/healthz")).status_code == 200
            # Reading is not blocked by a writer (WAL): the confirmation page still shows.
            assert http.get(server.url(url)).status_code == 200
            other.execute("ROLLBACK")
        finally:
            other.close()
        assert http.post(server.url(url), content=ONE_CLICK, headers=FORM).status_code == 200


def test_unsubscribes_waiting_on_a_lock_leave_threads_for_pages(
        project: Path, held_file: Callable[[], None]) -> None:
    # A long bound: the 50 unsubscribes are still waiting while pages are asked for.
    config = configuration.load(limits(project, busy_timeout=30))
    people = [f"reader{i}@example.org" for i in range(50)]
    with open(subscribers_file(project), "a") as f:  # each one waits for the file's lock
        f.writelines(f'\n[[subscriber]]\nemail = "{p}"\n' for p in people)

    async def scenario(server: Threaded) -> list[int]:
        async with httpx.AsyncClient(timeout=40, limits=httpx.Limits(max_connections=80)) as http:
            posts = [asyncio.create_task(http.post(server.url(unsubscribe_path(config, p)),
                                                   content=ONE_CLICK, headers=FORM))
                     for p in [ADA, *people]]
            # Every unsubscribe is inside the server (more than Starlette's 40 threads).
            while len(server.server.server_state.tasks) < len(posts):
                await asyncio.sleep(0.01)
            # Pages that need a worker thread, and /healthz, answer meanwhile.
            page = await http.get(server.url("/view/1999-01-01"), timeout=10)
            assert page.status_code == 404
            assert (await http.get(server.url("/healthz"), timeout=10)).status_code == 200
            assert not any(p.done() for p in posts)
            held_file()
            return [r.status_code for r in await asyncio.gather(*posts)]

    with Threaded(config) as server:
        assert asyncio.run(scenario(server)) == [200] * 51
    assert suppressed(config) == {ADA, *people}


# -- hang-ups -----------------------------------------------------------------------------

def _reset(s: socket.socket) -> None:
    """Close with a TCP reset, as a client that crashes or loses its network."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def test_client_hang_ups_log_no_error(project: Path) -> None:
    config = configuration.load(project)
    store = pipeline.open_store(config)
    try:  # a frozen digest: /view/DAY is a page big enough to be cut off
        now = pipeline.utcnow()
        pipeline.collect(config, store, now=now)
        day = pipeline.prepare(config, store, now=now,
                               subscribers=list(pipeline.load_roster(config).active())).day
    finally:
        store.close()
    url = unsubscribe_path(config)
    with ServeProcess(project) as server:
        # Mid-request: half a one-click body, then gone.
        s = _connect(server.port, f"POST {url} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                  "Content-Type: application/x-www-form-urlencoded\r\n"
                                  "Content-Length: 26\r\n\r\nList-Unsub".encode())
        s.close()
        s = _connect(server.port, f"POST {url} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                  "Content-Length: 26\r\n\r\nList".encode())
        _reset(s)
        # Mid-response: ask for the web version, read a little of it, then reset.
        for _ in range(5):
            s = _connect(server.port, f"GET /view/{day.isoformat()} HTTP/1.1\r\n"
                                      "Host: 127.0.0.1\r\n\r\n".encode())
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
            assert s.recv(100).startswith(b"HTTP/1.1 200")
            _reset(s)
        page = httpx.get(server.url(f"/view/{day.isoformat()}"), timeout=10)
        assert page.status_code == 200
    # Nothing logged as an error, and half a request unsubscribed nobody.
    assert "Traceback" not in server.stderr and "ERROR" not in server.stderr, server.stderr
    assert "Exception" not in server.stderr, server.stderr
    assert suppressed(config) == set()


def suppressed(config: Config) -> set[str]:
    store = pipeline.open_store(config)
    try:
        return store.suppressed()
    finally:
        store.close()


# -- ports ----------------------------------------------------------------------------------

def test_serve_and_preview_default_to_different_ports() -> None:
    # Both run side by side on one machine: the links in a previewed email reach serve.
    repo = Path(__file__).resolve().parents[1]
    for model in (configuration.load(repo / "config.toml").model,
                  configuration.ConfigModel.model_validate(
                      {"newsletter": {"from": "x@example.org"}})):
        assert (model.preview.port, model.serve.port) == (8025, 8026)
        assert model.newsletter.base_url == "http://127.0.0.1:8026"
