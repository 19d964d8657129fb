"""What the benchmarks measure of processes: memory as PSS, shared pages counted once."""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path


def pss_mb(pid: int) -> float:
    """Proportional set size: pages shared between processes (forked workers, helpers)
    counted once across the processes that share them."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0.0


def descendants(root: int, skip: Collection[int] = ()) -> list[int]:
    """``root`` and every process below it, leaving out the subtrees of ``skip``."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue
            parents.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += [c for c in parents.get(pid, ()) if c not in skip]
    return out
