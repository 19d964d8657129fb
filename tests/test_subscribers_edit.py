"""Editing subscriber files: only the edited entry changes, byte for byte."""

from __future__ import annotations

import difflib
import os
import stat
from pathlib import Path

import pytest

from digest.errors import SubscriberError
from digest.files import BOM
from digest.subscribers import edit as edits
from digest.subscribers import roster as subs

TOPICS = ("tech", "world", "science")

COMMENTED = """\
# Team list -- edited by hand, kept in git.
#   status: active | paused | unsubscribed

[[subscriber]]
email   = "ada@example.org"     # the first reader
name    = 'Ada Lovelace'
topics  = ["tech", "science"]
status  = "active"              # since 2024

# Bo joined late; no topics = everything
[[subscriber]]
email = "bo@example.org"
topics = [
  "world",  # only world news
]
# bo: ask about format

# Cy is a test entry
[[subscriber]]
email = "cy@example.org"
status = "paused"
"""


def folder_with(tmp_path: Path, text: str = COMMENTED, name: str = "team.toml",
                data: bytes | None = None) -> tuple[Path, Path]:
    folder = tmp_path / "subscribers"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_bytes(data if data is not None else text.encode())
    return folder, path


def changed_lines(before: str, after: str) -> list[str]:
    return [ln for ln in difflib.unified_diff(before.splitlines(), after.splitlines(),
                                              lineterm="", n=0)
            if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]


def test_changing_a_status_changes_that_line_only(tmp_path: Path) -> None:
    folder, path = folder_with(tmp_path)
    edits.set_status(folder, "ADA@example.org", "paused")
    after = path.read_text()
    # The value changes; the key's spacing and the comment after it stay.
    assert after == COMMENTED.replace('status  = "active"              # since 2024',
                                      'status  = "paused"              # since 2024')


def test_adding_a_missing_key_goes_inside_the_right_entry(tmp_path: Path) -> None:
    folder, path = folder_with(tmp_path)
    edits.set_status(folder, "bo@example.org", "unsubscribed")
    after = path.read_text()
    assert changed_lines(COMMENTED, after) == ['+status = "unsubscribed"']
    lines = after.splitlines()
    # Below Bo's last key (the multi-line array), above Bo's closing comment.
    i = lines.index('status = "unsubscribed"')
    assert lines[i - 1] == "]" and lines[i + 1] == "# bo: ask about format"
    assert subs.load(folder, TOPICS).find("bo@example.org").status == "unsubscribed"  # type: ignore[union-attr]


def test_removing_an_entry_takes_its_own_comments_only(tmp_path: Path) -> None:
    folder, path = folder_with(tmp_path)
    edits.set_status(folder, "bo@example.org", None)
    after = path.read_text()
    removed = changed_lines(COMMENTED, after)
    assert all(ln.startswith("-") for ln in removed)
    assert "# Cy is a test entry" in after and "# Bo joined late" not in after
    assert "# bo: ask about format" not in after
    assert after == COMMENTED.replace(COMMENTED[COMMENTED.index("# Bo joined"):
                                                COMMENTED.index("# Cy is")], "")
    edits.set_status(folder, "cy@example.org", None)  # the last one: no dangling blank line
    assert path.read_text().endswith('status  = "active"              # since 2024\n')


def test_add_appends_after_a_blank_line_and_changes_nothing_above(tmp_path: Path) -> None:
    folder, path = folder_with(tmp_path, name="subscribers.toml")
    from datetime import date

    edits.add(folder, "Lin@Example.ORG", name='Lin "L" Wu', topics=["tech"],
             timezone="Asia/Tokyo", today=date(2026, 11, 27))
    after = path.read_text()
    assert after.startswith(COMMENTED)
    assert after[len(COMMENTED):] == (
        '\n[[subscriber]]\nemail = "lin@example.org"\nname = "Lin \\"L\\" Wu"\n'
        'topics = ["tech"]\ntimezone = "Asia/Tokyo"\nstatus = "active"\nadded = 2026-11-27\n')
    lin = subs.load(folder, TOPICS).find("lin@example.org")
    assert lin is not None and lin.name == 'Lin "L" Wu' and lin.timezone == "Asia/Tokyo"
    with pytest.raises(SubscriberError, match="already subscribed"):
        edits.add(folder, "lin@EXAMPLE.org")


def test_bom_crlf_and_file_mode_survive_an_edit(tmp_path: Path) -> None:
    crlf = COMMENTED.replace("\n", "\r\n").encode()
    folder, path = folder_with(tmp_path, data=BOM + crlf)
    os.chmod(path, 0o640)
    edits.set_status(folder, "cy@example.org", "active")
    raw = path.read_bytes()
    assert raw.startswith(BOM)
    assert raw == BOM + crlf.replace(b'status = "paused"', b'status = "active"')
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    edits.set_status(folder, "bo@example.org", "paused")
    assert b'"world",  # only world news\r\n]\r\nstatus = "paused"\r\n' in path.read_bytes()
    assert not list(folder.glob(".*.tmp"))


def test_an_edit_never_overwrites_a_change_made_underneath(tmp_path: Path) -> None:
    _, path = folder_with(tmp_path)
    snap = edits.snapshot(path)
    # Someone saves the file in an editor after we read it...
    path.write_text(COMMENTED + '\n[[subscriber]]\nemail = "new@example.org"\n')
    new_text = edits.set_key(snap.text, path, "ada@example.org", "status", "paused")
    with pytest.raises(edits.FileChanged, match="changed while it was being edited"):
        edits.commit(snap, new_text)
    assert "new@example.org" in path.read_text()  # their save is intact
    assert 'status  = "active"' in path.read_text()  # our edit was not written


def test_edit_redoes_the_change_on_the_new_content(tmp_path: Path) -> None:
    _, path = folder_with(tmp_path)
    calls = 0

    def change(text: str) -> str:
        nonlocal calls
        calls += 1
        if calls == 1:  # a concurrent writer between our read and our write
            path.write_text(text.replace("# Cy is a test entry", "# Cy: still testing"))
        return edits.set_key(text, path, "ada@example.org", "status", "paused")

    assert edits.edit(path, change)
    after = path.read_text()
    assert calls == 2 and "# Cy: still testing" in after and 'status  = "paused"' in after
    with pytest.raises(edits.FileChanged):
        edits.edit(path, lambda text: (path.write_text(text + "# x\n"), text + "# y\n")[1],
                   attempts=2)


def test_status_changes_in_every_list_holding_the_address(tmp_path: Path) -> None:
    folder, a = folder_with(tmp_path)
    _, b = folder_with(tmp_path, '[[subscriber]]\nemail = "ada@EXAMPLE.org"\n', name="b.toml")
    paths = edits.set_status(folder, "ada@example.org", "unsubscribed")
    assert paths == [b, a]
    assert b.read_text() == '[[subscriber]]\nemail = "ada@EXAMPLE.org"\nstatus = "unsubscribed"\n'
    with pytest.raises(SubscriberError, match="not in any file"):
        edits.set_status(folder, "ghost@example.org", "paused")


def test_a_layout_it_cannot_edit_safely_is_refused(tmp_path: Path) -> None:
    folder, path = folder_with(tmp_path, 'subscriber = [{email = "ada@example.org"}]\n')
    with pytest.raises(SubscriberError, match="cannot edit safely"):
        edits.set_status(folder, "ada@example.org", "paused")
    assert path.read_text() == 'subscriber = [{email = "ada@example.org"}]\n'


def test_list_names_cannot_escape_the_folder(tmp_path: Path) -> None:
    folder, _ = folder_with(tmp_path)
    with pytest.raises(SubscriberError, match="list name"):
        edits.add(folder, "x@example.org", list_name="../etc/passwd")
    assert edits.list_path(folder, "friends.toml") == folder / "friends.toml"
