"""The architecture on paper holds: the import-linter contract in pyproject.toml
(see docs/architecture.md) is kept, and it is not a check that cannot fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT), "--no-cache"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_layers_contract_is_kept() -> None:
    got = lint(REPO)
    assert got.returncode == 0, got.stdout + got.stderr
    assert "Contracts: 1 kept, 0 broken." in got.stdout


def test_a_lower_layer_importing_a_higher_one_breaks_it(tmp_path: Path) -> None:
    shutil.copytree(REPO / "digest", tmp_path / "digest",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    # The render stage reaching up into the send stage: what the contract forbids.
    variant = tmp_path / "digest" / "render" / "variant.py"
    variant.write_text(variant.read_text() + "\nfrom digest.send import deliver  # noqa\n")
    got = lint(tmp_path)
    assert got.returncode != 0
    assert "digest.render is not allowed to import digest.send" in got.stdout
