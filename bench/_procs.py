"""What the benchmarks measure of processes: memory as PSS, shared pages counted once."""

from __future__ import annotations

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
