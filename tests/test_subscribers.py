from __future__ import annotations

from pathlib import Path

import pytest

from digest import subscribers as subs
from digest.errors import SubscriberError

TOPICS = ("tech", "world")


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def test_loads_normalises_and_dedupes_across_lists(tmp_path: Path) -> None:
    folder = tmp_path / "subscribers"
    write(folder, "a.toml", '[[subscriber]]\nemail = "Ada@EXAMPLE.org"\nname = "Ada"\n'
                            'topics = ["tech"]\ntimezone = "Europe/London"\n')
    write(folder, "b.toml", '[[subscriber]]\nemail = "ada@example.org"\n'
                            '[[subscriber]]\nemail = "bo@example.org"\nstatus = "paused"\n')
    roster = subs.load(folder, TOPICS)
    assert [s.email for s in roster.subscribers] == ["ada@example.org", "bo@example.org"]
    assert roster.problems == ()
    assert [s.email for s in roster.active()] == ["ada@example.org"]
    assert roster.active({"ada@example.org"}) == ()


def test_bad_entries_are_problems_with_file_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "subscribers"
    write(folder, "s.toml", """# comment
[[subscriber]]
email = "ok@example.org"

[[subscriber]]
email = "not an address"

[[subscriber]]
email = "tz@example.org"
timezone = "Atlantis/Capital"

[[subscriber]]
email = "topic@example.org"
topics = ["gardening"]

[[subscriber]]
email = "ok@example.org"
""")
    roster = subs.load(folder, TOPICS)
    assert [s.email for s in roster.subscribers] == ["ok@example.org"]
    problems = list(roster.problems)
    assert len(problems) == 4
    assert problems[0].startswith(f"{folder / 's.toml'}:5: email:")
    assert "s.toml:8: timezone: unknown time zone" in problems[1]
    assert "s.toml:12: topics: unknown topic 'gardening'" in problems[2]
    assert "s.toml:16: duplicate of" in problems[3]


def test_add_and_remove_keep_comments(tmp_path: Path) -> None:
    folder = tmp_path / "subscribers"
    path = write(folder, "subscribers.toml",
                 '# Our readers\n\n[[subscriber]]\nemail = "a@example.org"  # first!\n')
    subs.add(folder, "Lin@Example.ORG", name="Lin", topics=["tech"], timezone="Asia/Tokyo")
    text = path.read_text()
    assert "# Our readers" in text and "# first!" in text
    assert 'email = "lin@example.org"' in text
    with pytest.raises(SubscriberError, match="already subscribed"):
        subs.add(folder, "lin@example.org")
    subs.set_status(folder, "a@example.org", None)
    roster = subs.load(folder, TOPICS)
    assert [s.email for s in roster.subscribers] == ["lin@example.org"]
    assert "# Our readers" in path.read_text()
    assert not list(folder.glob(".*.tmp"))


def test_remove_unknown(tmp_path: Path) -> None:
    folder = tmp_path / "subscribers"
    write(folder, "s.toml", "")
    with pytest.raises(SubscriberError, match="not in any file"):
        subs.set_status(folder, "ghost@example.org", None)
