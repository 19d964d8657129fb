"""Start one of digest's helper processes (``python -m digest.<name>``) with pipes.

The DKIM signer and the feed parsers run beside the main process, each a plain
interpreter that imports only what it needs, and talk over stdin/stdout frames.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path


async def start_worker(module: str, *fds: int) -> asyncio.subprocess.Process:
    """``python -m module``, stderr ours; with ``fds``: those descriptors passed down
    and named on its command line, stdin closed; without: piped stdin and stdout."""
    # This digest package, wherever it was imported from (a checkout, a venv).
    here = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (here, os.environ.get("PYTHONPATH")) if p)}
    if fds:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", module, *map(str, fds), pass_fds=fds,
            stdin=asyncio.subprocess.DEVNULL, env=env)
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", module,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env)
