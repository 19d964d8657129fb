"""Writing output files: atomically, so a crash never leaves half a file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from digest.errors import DigestError

if TYPE_CHECKING:
    from digest.pipeline import Copy


def write_atomic(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise DigestError(f"{path.parent}: cannot write here: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_copy(copy: Copy, out_dir: Path) -> list[Path]:
    """digest.mjml (Jinja output before compiling), digest.html, digest.txt, digest.eml."""
    files = {
        "digest.mjml": copy.rendered.mjml.encode(),
        "digest.html": copy.html.encode(),
        "digest.txt": copy.text.encode(),
        "digest.eml": copy.message.as_bytes(),
    }
    written = []
    for name, data in files.items():
        write_atomic(out_dir / name, data)
        written.append(out_dir / name)
    return written
