"""`digest subscribers ...` as a user types it (click's runner, real files and SQLite)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner, Result

from digest.cli import cli

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data" / "csv"


def project(tmp_path: Path) -> Path:
    (tmp_path / "config.toml").write_text((REPO / "config.toml").read_text())
    shutil.copytree(REPO / "subscribers", tmp_path / "subscribers")
    return tmp_path / "config.toml"


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), "subscribers", *args],
                              catch_exceptions=False)


def test_check_lists_every_problem_and_fails(tmp_path: Path) -> None:
    config = project(tmp_path)
    ok = run(config, "check")
    assert ok.exit_code == 0, ok.output
    assert ok.output.strip().endswith("5 subscribers in 1 files (3 active, 1 paused, "
                                      "1 unsubscribed): 0 problems, 0 notes")
    (tmp_path / "subscribers" / "bad.toml").write_text(
        '[[subscriber]]\nemail = "nope"\n\n[[subscriber]]\nemail = "x@example.org"\n'
        'topics = ["gardening"]\n\n[[subscriber]]\nemail = "Ada@example.org"\n')
    bad = run(config, "check")
    assert bad.exit_code == 1
    lines = bad.output.splitlines()
    assert [ln.split(": ")[0] for ln in lines[:3]] == ["error", "error", "note"]
    assert "bad.toml:1: email:" in lines[0] and "bad.toml:4: topics: unknown topic" in lines[1]
    assert "subscribers.toml:9: ada@example.org is also on" in lines[2]
    assert lines[2].endswith("bad.toml:8; one digest goes out")


def test_add_pause_resume_remove(tmp_path: Path) -> None:
    config = project(tmp_path)
    added = run(config, "add", "Lin@Example.org", "--name", "Lin", "--topics", "tech",
                "--list", "friends", "--format", "text")
    assert added.exit_code == 0 and "added lin@example.org to" in added.output
    assert 'format = "text"' in (tmp_path / "subscribers" / "friends.toml").read_text()
    assert run(config, "pause", "lin@example.org").exit_code == 0
    listed = json.loads(run(config, "list", "--json").output)
    assert {p["email"]: p["status"] for p in listed}["lin@example.org"] == "paused"
    assert run(config, "resume", "lin@example.org").exit_code == 0
    refused = CliRunner().invoke(cli, ["--config", str(config), "subscribers", "resume",
                                       "former@example.org"])
    assert refused.exit_code == 1 and "resubscribe" in refused.output
    assert run(config, "remove", "lin@example.org").exit_code == 0
    assert "lin@" not in (tmp_path / "subscribers" / "friends.toml").read_text()


def test_unsubscribe_then_add_back_warns(tmp_path: Path) -> None:
    config = project(tmp_path)
    out = run(config, "unsubscribe", "kenji@example.net")
    assert "kenji@example.net unsubscribed: suppressed" in out.output
    assert "was already unsubscribed" in run(config, "unsubscribe", "kenji@example.net").output
    assert run(config, "remove", "kenji@example.net").exit_code == 0
    back = run(config, "add", "kenji@example.net")
    assert "gets nothing until 'digest subscribers resubscribe kenji@example.net'" in back.output


def test_import_dry_run_then_real_and_export(tmp_path: Path) -> None:
    config = project(tmp_path)
    before = (tmp_path / "subscribers" / "subscribers.toml").read_bytes()
    dry = CliRunner().invoke(cli, ["--config", str(config), "subscribers", "import",
                                   str(DATA / "mailchimp_bom.csv"), "--dry-run"])
    assert dry.exit_code == 1  # one invalid row
    assert "would add ada@example.org" not in dry.output  # Ada is already subscribed
    assert "would add kenji@example.net" not in dry.output
    assert "would import 0 of 4 rows" in dry.output
    real = CliRunner().invoke(cli, ["--config", str(config), "subscribers", "import",
                                    str(DATA / "excel_semicolon.csv"), "--list", "imported"])
    assert "imported 2 of 4 rows into" in real.output
    assert (tmp_path / "subscribers" / "subscribers.toml").read_bytes() == before
    exported = run(config, "export", "--format", "json")
    rows = json.loads(exported.output)
    assert {r["email"] for r in rows} >= {"lin@example.org", "zoe@bücher.example"}
    csv_out = run(config, "export", "--out", str(tmp_path / "all.csv"))
    assert csv_out.exit_code == 0
    assert (tmp_path / "all.csv").read_text().startswith("email,name,topics,timezone,format,"
                                                         "status,added,lists,suppressed")
