"""Start one of digest's helper processes (``python -m digest.<package>.<name>``) with pipes.

The DKIM signer and the embedding worker run beside the main process, each a plain
interpreter that imports only what it needs. (The feed parsers are forks of the
collector instead: see ``digest.collect.worker``.)
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path


def usable_cores() -> int:
    """Cores this process may run on (its affinity where the OS says)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        return os.cpu_count() or 1


def worker_env(**extra: str) -> dict[str, str]:
    """Our environment, with this digest package importable in the child wherever
    it was imported from here (a checkout, a venv), plus ``extra``."""
    here = str(Path(__file__).resolve().parent.parent)
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (here, os.environ.get("PYTHONPATH")) if p), **extra}


async def start_worker(module: str) -> asyncio.subprocess.Process:
    """``python -m module`` with piped stdin and stdout, stderr ours."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", module,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=worker_env())
