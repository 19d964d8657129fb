from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from digest import config as configuration
from digest.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_repo_config_loads_without_warnings(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        cfg = configuration.load(REPO / "config.toml")
    assert not caplog.records
    assert cfg.newsletter.name == "The Daily Selection"
    assert len(cfg.feeds) == 5
    assert all(f.url.startswith("file://") for f in cfg.feeds)
    assert cfg.schedule.timezone == "Europe/Berlin"
    assert cfg.smtp.security == "none"
    assert cfg.db_path == REPO / "var" / "digest.db"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml: config file not found"):
        configuration.load(tmp_path / "missing.toml")


def test_every_problem_named_by_key_path(tmp_path: Path) -> None:
    path = write(tmp_path, """
[schedule]
timezone = "Mars/Olympus"
time = "7am"
[smtp]
port = "twenty-five"
security = "ssl"
[[feeds]]
url = "https://ok.example/feed"
[[feeds]]
url = "htp:/broken"
""")
    with pytest.raises(ConfigError) as info:
        configuration.load(path)
    lines = str(info.value).splitlines()
    assert any("schedule.timezone: unknown time zone 'Mars/Olympus'" in ln for ln in lines)
    assert any("schedule.time: not a time of day '7am'" in ln for ln in lines)
    assert any("smtp.port:" in ln and "'twenty-five'" in ln for ln in lines)
    assert any("smtp.security:" in ln for ln in lines)
    assert any("feeds[1].url: not a URL: 'htp:/broken'" in ln for ln in lines)
    assert all(ln.startswith(str(path)) for ln in lines)


def test_unknown_key_is_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, '[newsletter]\nnmae = "Typo"\n[[feeds]]\nurl = "a.xml"\nwieght = 2\n')
    with caplog.at_level(logging.WARNING):
        cfg = configuration.load(path)
    messages = [r.getMessage() for r in caplog.records]
    assert any("unknown key newsletter.nmae" in m for m in messages)
    assert any("unknown key feeds[0].wieght" in m for m in messages)
    assert cfg.feeds[0].weight == 1.0


def test_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        configuration.load(write(tmp_path, "[newsletter\nname = 1"))


def test_section_topic_must_exist(tmp_path: Path) -> None:
    path = write(tmp_path, '[topics.tech]\nkeywords=["chip"]\n'
                           '[[selection.sections]]\ntitle="X"\ntopics=["sport"]\n')
    with pytest.raises(ConfigError, match=r"selection\.sections\[0\]\.topics: unknown topic"):
        configuration.load(path)


@pytest.mark.parametrize(("text", "expect_code", "expect"), [
    (None, 2, "missing.toml: config file not found"),
    ('[newsletter]\nnmae = "x"\n', 0, "unknown key newsletter.nmae"),
    ('[selection]\nmax_stories = "many"\n', 2, "selection.max_stories:"),
])
def test_cli_one_line_no_traceback(tmp_path: Path, text: str | None, expect_code: int,
                                   expect: str) -> None:
    path = tmp_path / "missing.toml"
    if text is not None:
        path = write(tmp_path, text + '[storage]\npath = "d.db"\n'
                     f'[paths]\nsubscribers = "{REPO / "subscribers"}"\n')
    proc = subprocess.run([sys.executable, "-m", "digest", "--config", str(path),
                           "subscribers", "list", "--json"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == expect_code, proc.stderr
    assert expect in proc.stderr
    assert "Traceback" not in proc.stderr
    problem_lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(problem_lines) == 1, proc.stderr
