"""Helpers for the preview tests: a private copy of the demo install and the real
preview app under uvicorn on a free loopback port."""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx

from digest import pipeline
from digest.config import Config
from digest.store.facade import Store
from digest.web.preview import Live, Server, create_app
from tests.peers import free_port

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "tests" / "artifacts"
MASTHEAD = "The Daily Selection"


def make_site(root: Path, *, smtp_port: int | None = None) -> Path:
    """A private copy of the demo install (templates too: tests edit them); its
    database lands under root/var/. Returns the config path."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("feeds", "templates", "subscribers"):
        shutil.copytree(REPO / name, root / name)
    text = (REPO / "config.toml").read_text("utf-8")
    if smtp_port is not None:
        text = re.sub(r"(?m)^port = 2525\b", f"port = {smtp_port}", text, count=1)
    (root / "config.toml").write_text(text, "utf-8")
    return root / "config.toml"


class Running:
    """create_app(config, **app) under uvicorn (digest.web.preview.Server) in a thread."""

    def __init__(self, config: Config, **app: Any) -> None:
        self.port = free_port()
        self.server = Server(create_app(config, **app), host="127.0.0.1", port=self.port)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def live(self) -> Live:
        return self.server.live

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> Running:
        self.thread.start()
        deadline = time.monotonic() + 60  # startup collects the demo feeds first
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("preview server exited during startup")
            if time.monotonic() > deadline:
                raise TimeoutError("preview server did not start within 60 s")
            time.sleep(0.02)
        httpx.get(self.url("/preview.js"), timeout=10).raise_for_status()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "preview server did not stop"


def story_urls(config: Config) -> set[str]:
    store = Store.open(config.db_path)
    try:
        return {a.url for a in store.articles_since(None)}
    finally:
        store.close()


def today(config: Config) -> date:
    return pipeline.today(config, pipeline.utcnow())


def events(client: httpx.Client, url: str) -> Iterator[str]:
    """The versions an /events stream announces, in order."""
    with client.stream("GET", url, timeout=httpx.Timeout(20.0)) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        event = ""
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line.partition(":")[2].strip()
            elif line.startswith("data:") and event == "version":
                yield line.partition(":")[2].strip()


__all__ = ["ARTIFACTS", "MASTHEAD", "REPO", "Running", "events", "make_site", "story_urls",
           "today"]
