"""Every command pays for the imports at the top of the CLI: `--help` should not wait
for SQLAlchemy, pydantic or the ranking model, and `digest collect` should not
load what ranks, renders and sends. Checked by what a fresh interpreter has
imported (a list of modules, not a timing)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("sqlalchemy", "aiohttp", "pydantic", "numpy", "jinja2", "mjml", "aiosmtplib",
         "lxml", "nh3", "digest.pipeline", "digest.store.facade", "digest.rank.select",
         "digest.render.variant")
LATER_STAGES = ("numpy", "jinja2", "mjml", "aiosmtplib", "digest.rank.select",
                "digest.render.variant", "digest.send.deliver", "digest.mail.message",
                "digest.rank.cluster", "digest.rank.embed")


def _imported_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys; print(json.dumps(sorted(sys.modules)))"],
        check=True, capture_output=True, text=True).stdout
    return set(json.loads(out))


def test_the_cli_itself_imports_no_stage() -> None:
    loaded = _imported_after("import digest.cli")
    assert "click" in loaded  # the probe sees imports at all
    assert not [m for m in HEAVY if m in loaded]


def test_collecting_does_not_load_ranking_rendering_or_sending() -> None:
    loaded = _imported_after("import digest.cli\nfrom digest import pipeline")
    assert "digest.collect.collector" in loaded and "digest.store.facade" in loaded
    assert not [m for m in LATER_STAGES if m in loaded]


def test_importing_the_cli_registers_every_command() -> None:
    # The commands live in one module per group; digest/cli/__init__.py imports them
    # all, so `digest`, `python -m digest` and `from digest.cli import cli` see the same.
    from digest.cli import cli

    assert sorted(cli.commands) == ["bounces", "catch", "check", "collect", "demo", "desk", "feeds",
                                    "preview", "rank", "render", "run", "schedule", "send",
                                    "serve", "status", "subscribers"]
    assert sorted(cli.commands["subscribers"].commands) == [  # type: ignore[attr-defined]
        "add", "check", "export", "import", "list", "pause", "remove", "resubscribe",
        "resume", "unsubscribe"]
