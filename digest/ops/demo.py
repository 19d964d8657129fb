"""`make demo`: the whole day end to end on the bundled feeds, delivered over real
SMTP to digest's own catcher, in a fresh folder so it never touches real state."""

from __future__ import annotations

import email
import email.policy
import shutil
import time
from pathlib import Path

import click

from digest.config import Config
from digest.errors import DigestError
from digest.ops.runner import run_now
from digest.send.catch import Catcher

MARKER = ".digest-demo"


def _fresh(folder: Path) -> None:
    if folder.exists():
        if not (folder / MARKER).exists():
            raise DigestError(f"{folder} exists and is not a demo folder; refusing to clear it",
                              hint="pass --out with a new folder")
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / MARKER).write_text("made by `digest demo`; cleared on the next demo run\n")


def run_demo(config: Config, folder: Path) -> list[Path]:
    started = time.monotonic()
    folder = folder.resolve()
    _fresh(folder)
    outbox = folder / "outbox"
    with Catcher(outbox, port=0) as catcher:
        demo_config = config.with_overrides(
            storage={"path": str(folder / "digest.db")},
            smtp={"host": "127.0.0.1", "port": catcher.port, "security": "none",
                  "username": ""},
        )
        click.echo(f"demo: catcher listening on 127.0.0.1:{catcher.port}")
        run_now(demo_config)
    files = sorted(outbox.glob("*.eml"))
    for path in files:
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        parts = [p.get_content_type() for p in msg.walk() if not p.is_multipart()]
        html = msg.get_body(("html",))
        # What Gmail measures against its ~102 KB clip: the encoded HTML part.
        size = f"html {len(html.as_bytes()) / 1024:.0f} KB" if html is not None else "no html"
        unsub = "List-Unsubscribe+Post" if msg["List-Unsubscribe"] and \
            msg["List-Unsubscribe-Post"] else "NO List-Unsubscribe"
        click.echo(f"  {path}\n      to={msg['To']}  {msg.get_content_type()} "
                   f"[{', '.join(parts)}]  {size}  {unsub}")
    click.echo(f"demo: {len(files)} messages delivered to {outbox}/ "
               f"in {time.monotonic() - started:.1f} s "
               f"(open one with any mail client, or: digest --config {config.path} preview)")
    return files
