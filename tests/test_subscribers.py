from __future__ import annotations

from pathlib import Path

import pytest

from digest.errors import SubscriberError
from digest.subscribers import edit as edits
from digest.subscribers import roster as subs

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
    edits.add(folder, "Lin@Example.ORG", name="Lin", topics=["tech"], timezone="Asia/Tokyo")
    text = path.read_text()
    assert "# Our readers" in text and "# first!" in text
    assert 'email = "lin@example.org"' in text
    with pytest.raises(SubscriberError, match="already subscribed"):
        edits.add(folder, "lin@example.org")
    edits.set_status(folder, "a@example.org", None)
    roster = subs.load(folder, TOPICS)
    assert [s.email for s in roster.subscribers] == ["lin@example.org"]
    assert "# Our readers" in path.read_text()
    assert not list(folder.glob(".*.tmp"))


def test_remove_unknown(tmp_path: Path) -> None:
    folder = tmp_path / "subscribers"
    write(folder, "s.toml", "")
    with pytest.raises(SubscriberError, match="not in any file"):
        edits.set_status(folder, "ghost@example.org", None)


def test_unknown_keys_types_and_dates_are_one_line_problems(tmp_path: Path) -> None:
    folder = tmp_path / "subscribers"
    write(folder, "s.toml", """[[subscriber]]
email = "a@example.org"
stauts = "unsubscribed"

[[subscriber]]
email = "b@example.org"
name = 42

[[subscriber]]
email = "c@example.org"
added = "last tuesday"

[[subscriber]]
name = "No Address"

[[subscriber]]
email = "d@example.org"
format = "pdf"
added = 2026-01-31
""")
    write(folder, "t.toml", 'title = "Team"\n')
    roster = subs.load(folder, TOPICS)
    problems = list(roster.problems)
    assert len(problems) == 6, problems
    assert problems[0] == f"{folder / 's.toml'}:1: stauts: unknown key; did you mean 'status'?"
    assert "s.toml:5: name: must be a string" in problems[1]
    assert "s.toml:9: added: 'last tuesday' is not a date" in problems[2]
    assert "s.toml:13: email: required key is missing" in problems[3]
    assert "s.toml:16: format: 'pdf' is not html or text" in problems[4]
    assert "t.toml: title: unknown top-level key" in problems[5]
    # An entry with a typo in a key is skipped, not mailed with the key ignored:
    # "stauts = unsubscribed" must never turn into a digest.
    assert roster.subscribers == ()
    assert all("\n" not in p for p in problems)


def test_idn_and_case_normalise_to_one_address(tmp_path: Path) -> None:
    folder = tmp_path / "subscribers"
    write(folder, "a.toml", '[[subscriber]]\nemail = "Jörg@BÜCHER.example"\n')
    write(folder, "b.toml", '[[subscriber]]\nemail = "jörg@xn--bcher-kva.example"\n'
                            'status = "unsubscribed"\n')
    roster = subs.load(folder, TOPICS)
    assert [s.email for s in roster.subscribers] == ["jörg@bücher.example"]
    # On two lists: one digest; the stricter status wins, and it is noted with both places.
    assert roster.subscribers[0].status == "unsubscribed"
    assert roster.problems == ()
    assert roster.notes == (f"{folder / 'b.toml'}:1: jörg@bücher.example is also on "
                            f"{folder / 'a.toml'}:1; one digest goes out (status unsubscribed: "
                            "the stricter of active and unsubscribed)",)
    assert subs.normalise_email("ADA@Example.ORG ") == "ada@example.org"


def test_lists_merge_topics(tmp_path: Path) -> None:
    folder = tmp_path / "subscribers"
    write(folder, "a.toml", '[[subscriber]]\nemail = "a@example.org"\ntopics = ["tech"]\n'
                            '[[subscriber]]\nemail = "b@example.org"\ntopics = ["tech"]\n')
    write(folder, "b.toml", '[[subscriber]]\nemail = "a@example.org"\ntopics = ["world"]\n'
                            '[[subscriber]]\nemail = "b@example.org"\n')
    roster = subs.load(folder, TOPICS)
    assert [s.topics for s in roster.subscribers] == [("tech", "world"), ()]
    assert len(roster.entries_of("a@example.org")) == 2


def test_suppressed_and_unsubscribed_addresses_are_not_mailable(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    folder = tmp_path / "subscribers"
    write(folder, "a.toml", '[[subscriber]]\nemail = "gone@example.org"\nstatus = "unsubscribed"\n'
                            '[[subscriber]]\nemail = "ok@example.org"\n')
    roster = subs.load(folder, TOPICS)
    subs.check_mailable("ok@example.org", roster, None)
    subs.check_mailable("stranger@example.org", roster, None)
    with pytest.raises(SubscriberError, match="is unsubscribed"):
        subs.check_mailable("gone@example.org", roster, None)
    when = datetime(2026, 11, 27, tzinfo=UTC)
    with pytest.raises(SubscriberError, match=r"unsubscribed on 2026-11-27 \(one-click\)") as e:
        subs.check_mailable("ok@example.org", roster, ("one-click", when))
    assert "resubscribe ok@example.org" in str(e.value)
