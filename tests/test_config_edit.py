"""config.toml's [[feeds]] edited line by line: everything outside the entry that is
added or removed stays byte for byte, on layouts people really write."""

from __future__ import annotations

import difflib
import re
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.config import edit
from digest.errors import BusyError, ConfigError

REPO = Path(__file__).resolve().parents[1]
P = Path("config.toml")
NEW = {"url": "https://example.org/feed.xml", "name": "Example", "weight": 1.5,
       "topics": ["tech"]}

LAYOUTS = {
    "shipped": (REPO / "config.toml").read_text(),
    "crlf, indented keys, inline comments": (
        "# my digest\r\n[newsletter]\r\nname = \"N\"\r\n\r\n"
        "# feeds I read\r\n[[feeds]]\r\n  url = \"https://a.example/rss\"  # the first\r\n"
        "  name = \"A\"\r\n\r\n\r\n[[feeds]]\r\n  url = \"https://b.example/atom\"\r\n"
        "  # weight = 2   (too loud)\r\n\r\n# Topics\r\n[topics.tech]\r\n"
        "keywords = [\"chip\"]\r\n"),
    "feeds last, closing comment, no final newline": (
        "[newsletter]\nname = \"N\"\n\n[[feeds]]\nurl = \"https://a.example/rss\"\n"
        "name = \"A\"\n\n# end of the list: add more above\n# (really)"),
    "no feeds yet": "# nothing here yet\n[selection]\nmax_stories = 3  # small\n",
    "a comment block between entries": (
        "[[feeds]]\nurl = \"https://a.example/rss\"\n\n# --- science ---\n"
        "[[feeds]]\nurl = \"https://s.example/rss\"\ntopics = [\"science\"]\n"
        "\n[topics.science]\ntitle = \"Science\"\n"),
}


def _comments(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.lstrip().startswith("#") or "#" in ln]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_adding_then_removing_gives_back_the_file_byte_for_byte(layout: str) -> None:
    old = LAYOUTS[layout]
    added = edit.with_feeds_added(old, P, [NEW])
    data = tomllib.loads(added)
    assert data["feeds"][-1] == NEW
    assert _comments(added) == _comments(old)
    assert "".join(_inserted(old, added)).lstrip("\r\n").startswith("[[feeds]]")
    assert edit.with_feed_removed(added, P, len(data["feeds"]) - 1) == old


def test_the_new_entry_goes_after_the_last_feed_not_after_the_next_sections_comment() -> None:
    old = LAYOUTS["shipped"]
    added = edit.with_feeds_added(old, P, [NEW])
    lines = added.splitlines()
    new_at = lines.index('url = "https://example.org/feed.xml"')
    topics_comment = next(i for i, ln in enumerate(lines) if ln.startswith("# Topics:"))
    assert lines[new_at - 1] == "[[feeds]]" and lines[new_at - 2] == ""
    assert lines[new_at - 3] == 'topics = ["science"]'  # the last feed's last key
    assert new_at < topics_comment and lines[topics_comment - 1] == ""


def test_keys_follow_the_files_indent_and_line_ends() -> None:
    added = edit.with_feeds_added(LAYOUTS["crlf, indented keys, inline comments"], P, [NEW])
    assert '\r\n[[feeds]]\r\n  url = "https://example.org/feed.xml"\r\n  name = "Example"\r\n' \
        in added
    assert "\n" not in added.replace("\r\n", "")


def test_removing_keeps_every_comment_even_the_ones_above_the_entry() -> None:
    old = LAYOUTS["a comment block between entries"]
    removed = edit.with_feed_removed(old, P, 1)
    assert removed == ("[[feeds]]\nurl = \"https://a.example/rss\"\n\n# --- science ---\n"
                       "\n[topics.science]\ntitle = \"Science\"\n")
    first = edit.with_feed_removed(LAYOUTS["crlf, indented keys, inline comments"], P, 0)
    assert "# feeds I read\r\n\r\n\r\n[[feeds]]\r\n" in first and "the first" not in first
    assert tomllib.loads(first)["feeds"] == [{"url": "https://b.example/atom"}]
    # The commented-out key inside the removed entry is the entry's: it goes with it.
    second = edit.with_feed_removed(LAYOUTS["crlf, indented keys, inline comments"], P, 1)
    assert "too loud" not in second and "# Topics\r\n" in second


def test_several_entries_in_one_edit_and_the_last_one_removed_drops_the_array() -> None:
    old = LAYOUTS["no feeds yet"]
    two = edit.with_feeds_added(old, P, [NEW, {"url": "https://b.example/", "name": "B"}])
    assert [f["name"] for f in tomllib.loads(two)["feeds"]] == ["Example", "B"]
    one = edit.with_feed_removed(two, P, 0)
    assert "feeds" not in tomllib.loads(edit.with_feed_removed(one, P, 0))


@pytest.mark.parametrize("text", [
    'feeds = [{url = "https://a.example/rss"}]\n',
    '[[feeds]]\nurl = "https://a.example/rss"\nnote = """\n[[feeds]]\n"""\n',
])
def test_shapes_it_cannot_edit_safely_are_refused_not_mangled(text: str) -> None:
    with pytest.raises(ConfigError, match="cannot edit the feeds safely"):
        edit.with_feeds_added(text, P, [NEW])


def test_an_invalid_entry_is_refused_before_anything_is_written() -> None:
    with pytest.raises(ConfigError, match=r"new feed url: not a URL"):
        edit.with_feeds_added(LAYOUTS["no feeds yet"], P, [{"url": "javascript:alert(1)"}])


def test_only_a_line_feed_ends_a_line() -> None:
    # str.splitlines would end a line at U+2028 or U+0085 inside this string, and read
    # what follows as a second [[feeds]] header.
    old = '[[feeds]]\nurl = "https://a.example/"\nname = "A\u2028[[feeds]] # x\x85"\n'
    added = edit.with_feeds_added(old, P, [NEW])
    assert tomllib.loads(added)["feeds"][0]["name"] == "A\u2028[[feeds]] # x\x85"
    assert edit.with_feed_removed(added, P, 1) == old


@settings(max_examples=60, deadline=None)
@given(name=st.text(max_size=40), site=st.text(max_size=20))
def test_any_name_is_written_as_toml_that_reads_back_the_same(name: str, site: str) -> None:
    entry = {"url": "https://example.org/feed", "name": name, "site": site}
    added = edit.with_feeds_added(LAYOUTS["shipped"], P, [entry])
    assert tomllib.loads(added)["feeds"][-1] == entry
    assert len(_inserted(LAYOUTS["shipped"], added)) == 5  # blank, header and three keys
    assert edit.with_feed_removed(added, P, 5) == LAYOUTS["shipped"]


def test_a_file_changed_meanwhile_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(LAYOUTS["no feeds yet"])

    def change(text: str) -> str:
        path.write_text(text + "# saved by an editor meanwhile\n")  # another writer
        return edit.with_feeds_added(text, path, [NEW])

    with pytest.raises(ConfigError, match="changed while it was being edited"):
        edit.edit(path, change)
    assert path.read_text().endswith("# saved by an editor meanwhile\n")


def test_an_edit_waits_for_another_editor_and_never_interleaves(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(LAYOUTS["no feeds yet"])
    with edit.folder_lock(tmp_path):  # another digest command, mid-edit
        with pytest.raises(BusyError, match="another digest command is editing"):
            edit.edit(path, lambda t: edit.with_feeds_added(t, path, [NEW]), timeout=0)
        assert path.read_text() == LAYOUTS["no feeds yet"]
    assert edit.edit(path, lambda t: edit.with_feeds_added(t, path, [NEW]), timeout=0)


def test_the_bom_and_the_file_mode_stay(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b"\xef\xbb\xbf" + LAYOUTS["no feeds yet"].encode())
    path.chmod(0o640)
    assert edit.edit(path, lambda t: edit.with_feeds_added(t, path, [NEW]))
    assert path.read_bytes().startswith(b"\xef\xbb\xbf# nothing here yet\n")
    assert path.stat().st_mode & 0o777 == 0o640
    assert not [p for p in tmp_path.iterdir() if p.name != "config.toml"]  # no temp left


def _inserted(old: str, new: str) -> list[str]:
    """The lines ``new`` adds to ``old``, which must be one contiguous insertion."""
    a, b = re.findall(r"[^\n]*\n|[^\n]+$", old), re.findall(r"[^\n]*\n|[^\n]+$", new)
    ops = [op for op in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes()
           if op[0] != "equal"]
    assert len(ops) == 1 and ops[0][0] == "insert", ops
    return b[ops[0][3]:ops[0][4]]
