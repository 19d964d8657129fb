from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from digest import config as configuration
from digest.schedule import next_run

BERLIN = ZoneInfo("Europe/Berlin")


def load(tmp_path: Path, days: str = "") -> configuration.Config:
    path = tmp_path / "config.toml"
    path.write_text(f'[schedule]\ntime = "07:00"\ntimezone = "Europe/Berlin"\n{days}')
    return configuration.load(path)


def test_fires_at_local_time_across_dst(tmp_path: Path) -> None:
    cfg = load(tmp_path)
    # The night clocks go forward (29 March 2026) and back (25 October 2026).
    for day in (datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN),
                datetime(2026, 10, 24, 12, 0, tzinfo=BERLIN)):
        fire = next_run(cfg, day)
        assert fire is not None
        local = fire.astimezone(BERLIN)
        assert (local.day, local.hour, local.minute) == (day.day + 1, 7, 0)
    spring = next_run(cfg, datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN))
    autumn = next_run(cfg, datetime(2026, 10, 24, 12, 0, tzinfo=BERLIN))
    assert spring is not None and autumn is not None
    assert spring.utcoffset() != autumn.utcoffset()


def test_only_configured_days(tmp_path: Path) -> None:
    cfg = load(tmp_path, 'days = ["mon"]\n')
    fire = next_run(cfg, datetime(2026, 11, 27, 12, 0, tzinfo=BERLIN))  # a Friday
    assert fire is not None and fire.astimezone(BERLIN).weekday() == 0
