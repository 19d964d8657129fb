"""Subscriber-file edits at their edges (digest/subscribers/entries.py and edit.py):
where a key lands in an entry without one, quoted keys and literal strings, files
without a final newline, CRLF, removing every entry, appending to an empty or
unterminated file, files it must refuse, and the CLI-facing helpers' choices (list
names, what `add` writes, which files hold an address). Real files in tmp_path.
Written from the mutants `make mutate GROUPS=subscribers` left alive."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from digest.errors import SubscriberError
from digest.files import BOM
from digest.subscribers import edit as edits
from digest.subscribers import entries
from digest.subscribers import roster as subs

P = Path("team.toml")


def folder_of(tmp_path: Path, **files: str | bytes) -> Path:
    folder = tmp_path / "subscribers"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        data = text if isinstance(text, bytes) else text.encode()
        (folder / f"{name}.toml").write_bytes(data)
    return folder


# -- entries.blocks --------------------------------------------------------------

def test_blocks_own_their_comments_keys_and_trailing_blanks() -> None:
    text = ("# file comment\n"       # 0
            "\n"                     # 1
            "# about ada\n"          # 2
            "# more about ada\n"     # 3
            "[[subscriber]]\n"       # 4
            'email = "a@x.org"\n'    # 5
            "\n"                     # 6
            '# a note inside\n'      # 7
            'name = "A"\n'           # 8
            "\n"                     # 9
            "\n"                     # 10
            "# about bo\n"           # 11
            "[[subscriber]]  # bo\n"  # 12
            'email = "b@x.org"\n'    # 13
            "# closing\n")           # 14: the file's last comment, not bo's
    got = entries.blocks(text.splitlines(keepends=True))
    assert got == [entries.Block(lead=2, header=4, body_end=9, end=11),
                   entries.Block(lead=11, header=12, body_end=14, end=14)]


@pytest.mark.parametrize(("text", "want"), [
    # a comment right under a header belongs to the next entry's lead, not the body
    ("[[subscriber]]\n# c\n[[subscriber]]\n", [(0, 0, 1, 1), (1, 2, 3, 3)]),
    # header-only entries: the body ends right after the header
    ("[[subscriber]]\n\n[[subscriber]]\n", [(0, 0, 1, 2), (2, 2, 3, 3)]),
    # the first line's comment leads the entry; the file's last comment is no one's lead
    ("# c\n[[subscriber]]\nx = 1\n# end\n", [(0, 1, 3, 3)]),
    ("[[subscriber]]\nx = 1\n# end\n", [(0, 0, 2, 2)]),
])
def test_block_edges(text: str, want: list[tuple[int, int, int, int]]) -> None:
    assert [tuple(vars(b).values()) for b in entries.blocks(text.splitlines(keepends=True))] \
        == want


def test_other_tables_are_not_subscriber_blocks() -> None:
    text = '[meta]\nowner = "me"\n[[subscriber]]\nemail = "a@x.org"\n[[other]]\nx = 1\n'
    got = entries.blocks(text.splitlines(keepends=True))
    assert got == [entries.Block(lead=2, header=2, body_end=4, end=4)]


# -- set_key -----------------------------------------------------------------------

def test_a_quoted_key_and_a_literal_string_keep_their_spelling() -> None:
    text = "[[subscriber]]\n\"email\" = 'a@x.org'\n'status' = 'paused'  # why\n"
    out = entries.set_key(text, P, "a@x.org", "status", "active")
    assert out == "[[subscriber]]\n\"email\" = 'a@x.org'\n'status' = \"active\"  # why\n"


def test_a_value_with_an_escaped_quote_is_replaced_whole() -> None:
    text = '[[subscriber]]\nemail = "a@x.org"\nname = "A \\"B\\" C" # n\n'
    out = entries.set_key(text, P, "a@x.org", "name", "D")
    assert out == '[[subscriber]]\nemail = "a@x.org"\nname = "D" # n\n'


def test_a_key_added_to_an_indented_entry_takes_its_indent() -> None:
    text = ('[[subscriber]]\n  email = "a@x.org"\n  name = "A"\n\n'
            '[[subscriber]]\nemail = "b@x.org"\n')
    out = entries.set_key(text, P, "a@x.org", "status", "paused")
    assert out == ('[[subscriber]]\n  email = "a@x.org"\n  name = "A"\n  status = "paused"\n\n'
                   '[[subscriber]]\nemail = "b@x.org"\n')


def test_the_key_on_the_line_under_the_header_is_found() -> None:
    text = '[[subscriber]]\nstatus = "paused"\nemail = "a@x.org"\n'
    assert entries.set_key(text, P, "a@x.org", "status", "active") == \
        '[[subscriber]]\nstatus = "active"\nemail = "a@x.org"\n'


def test_an_entry_of_one_indented_key_gives_its_indent_to_the_new_one() -> None:
    assert entries.set_key('[[subscriber]]\n\temail = "a@x.org"\n', P, "a@x.org", "status",
                           "x") == '[[subscriber]]\n\temail = "a@x.org"\n\tstatus = "x"\n'


def test_a_key_added_at_the_end_of_a_file_without_a_final_newline() -> None:
    out = entries.set_key('[[subscriber]]\nemail = "a@x.org"', P, "a@x.org", "status", "paused")
    assert out == '[[subscriber]]\nemail = "a@x.org"\nstatus = "paused"\n'
    crlf = entries.set_key('[[subscriber]]\r\nemail = "a@x.org"', P, "a@x.org", "status", "x")
    assert crlf == '[[subscriber]]\r\nemail = "a@x.org"\r\nstatus = "x"\r\n'


def test_a_key_goes_above_the_comments_that_close_an_entry() -> None:
    text = ('[[subscriber]]\nemail = "a@x.org"\n# closing one\n# closing two\n\n'
            '[[subscriber]]\nemail = "b@x.org"\n')
    out = entries.set_key(text, P, "a@x.org", "status", "paused")
    assert out == ('[[subscriber]]\nemail = "a@x.org"\nstatus = "paused"\n# closing one\n'
                   '# closing two\n\n[[subscriber]]\nemail = "b@x.org"\n')


def test_every_entry_of_the_address_and_only_those_that_differ() -> None:
    text = ('[[subscriber]]\nemail = "A@x.org"\nstatus = "paused"\n\n'
            '[[subscriber]]\nemail = "b@x.org"\n\n'
            '[[subscriber]]\nemail = "a@X.org"\n\n'
            '[[subscriber]]\nemail = "not an address"\n')
    out = entries.set_key(text, P, "a@x.org", "status", "paused")
    assert out == text.replace('email = "a@X.org"\n', 'email = "a@X.org"\nstatus = "paused"\n')
    assert entries.set_key(out, P, "a@x.org", "status", "paused") == out  # nothing to do
    literal = "[[subscriber]]\nemail = 'a@x.org'\nstatus = 'paused'\n"
    assert entries.set_key(literal, P, "a@x.org", "status", "paused") == literal  # as written
    both = entries.set_key(text, P, {"a@x.org", "b@x.org"}, "status", "active")
    assert both.count('status = "active"') == 3 and 'status = "paused"' not in both


def test_an_entry_with_only_its_header_gets_the_key_unindented() -> None:
    text = '[[subscriber]]\n  email = "b@x.org"\n[[subscriber]]\n'
    with pytest.raises(SubscriberError, match=r"not valid TOML"):
        entries.set_key("[[subscriber]\n", P, "a@x.org", "status", "paused")
    out = entries.set_key(text + 'email = "a@x.org"\n', P, "a@x.org", "status", "paused")
    assert out == text + 'email = "a@x.org"\nstatus = "paused"\n'


def test_files_it_cannot_edit_are_refused_with_the_path() -> None:
    with pytest.raises(SubscriberError, match=r"^team\.toml: not valid TOML: ") as e:
        entries.set_key("[[subscriber]\nemail = 1\n", P, "a@x.org", "status", "paused")
    assert e.value.hint == "fix it, then retry"
    with pytest.raises(SubscriberError) as e:
        entries.set_key('subscriber = "nobody"\n', P, "a@x.org", "status", "paused")
    assert str(e.value) == ("team.toml: cannot edit safely: write each subscriber as a "
                            "[[subscriber]] table")
    # A header the line scan finds but TOML reads differently: the check after the
    # edit refuses it instead of writing something else than intended.
    tricky = '[[subscriber]]\nemail = "a@x.org"\nnote = """\nstatus = "x"\n"""\n'
    with pytest.raises(SubscriberError, match=r"^team\.toml: cannot edit this entry safely"):
        entries.set_key(tricky, P, "a@x.org", "status", "paused")


# -- remove_entries ----------------------------------------------------------------

def test_removing_every_entry_leaves_a_note_saying_how_to_add_one() -> None:
    text = '# list\n\n[[subscriber]]\nemail = "a@x.org"\n'
    out = entries.remove_entries(text, P, "a@x.org")
    assert out == "# list\n"
    alone = entries.remove_entries('[[subscriber]]\r\nemail = "A@x.org"\r\n', P, "a@x.org")
    assert alone == ("# No subscribers left in this list. Add one with: digest subscribers add "
                     "EMAIL --list team\r\n")
    lf = entries.remove_entries('\n[[subscriber]]\nemail = "a@x.org"\n\n', P, "a@x.org")
    assert lf == ("# No subscribers left in this list. Add one with: digest subscribers add "
                  "EMAIL --list team\n")
    assert entries.remove_entries("# list\n", P, "a@x.org") == "# list\n"  # nobody to remove
    assert entries.remove_entries("", P, "a@x.org") == ""


def test_removing_a_middle_entry_keeps_the_blank_line_before_the_next() -> None:
    text = ('[[subscriber]]\nemail = "a@x.org"\n\n# b\n[[subscriber]]\nemail = "b@x.org"\n\n\n'
            '[[subscriber]]\nemail = "c@x.org"\n')
    assert entries.remove_entries(text, P, "b@x.org") == \
        '[[subscriber]]\nemail = "a@x.org"\n\n[[subscriber]]\nemail = "c@x.org"\n'
    assert entries.remove_entries(text, P, "c@x.org") == \
        '[[subscriber]]\nemail = "a@x.org"\n\n# b\n[[subscriber]]\nemail = "b@x.org"\n'


# -- append_entry ------------------------------------------------------------------

@pytest.mark.parametrize(("before", "after"), [
    ("", ""),
    ("\n", "\n"),
    ("# list", "# list\n\n"),
    ("# list\n", "# list\n\n"),
    ("# list\n\n", "# list\n\n"),
    ("# list\r\n", "# list\r\n\r\n"),
    ("# list\r\n\r\n", "# list\r\n\r\n"),
])
def test_append_adds_one_blank_line_before_the_new_entry(before: str, after: str) -> None:
    nl = "\r\n" if "\r\n" in before else "\n"
    out = entries.append_entry(before, P, {"email": "a@x.org", "topics": []})
    assert out == f"{after}[[subscriber]]{nl}email = \"a@x.org\"{nl}topics = []{nl}"


# -- edit.py ---------------------------------------------------------------------

def test_a_file_that_is_not_utf8_is_refused_unchanged(tmp_path: Path) -> None:
    folder = folder_of(tmp_path, team='[[subscriber]]\nemail = "a@x.org"\nname = "Zoë"\n'
                       .encode("latin-1"))
    with pytest.raises(SubscriberError, match=r"team\.toml: not UTF-8; save it as UTF-8 first"):
        edits.snapshot(folder / "team.toml")
    assert edits.files_with(folder, "a@x.org") == []


def test_snapshots_of_missing_bom_and_crlf_files(tmp_path: Path) -> None:
    folder = folder_of(tmp_path, bom=BOM + b"# x\r\n", plain=b"# y\n")
    missing = edits.snapshot(folder / "none.toml")
    assert (missing.raw, missing.text, missing.bom, missing.newline) == (None, "", False, "\n")
    bom = edits.snapshot(folder / "bom.toml")
    assert (bom.raw, bom.text, bom.bom, bom.newline) == (BOM + b"# x\r\n", "# x\r\n", True,
                                                         "\r\n")
    assert edits.snapshot(folder / "plain.toml").bom is False


def test_edit_returns_false_and_writes_nothing_when_nothing_changes(tmp_path: Path) -> None:
    folder = folder_of(tmp_path, team="# x\n")
    path = folder / "team.toml"
    before = path.stat().st_mtime_ns, path.stat().st_ino
    assert edits.edit(path, lambda text: text) is False
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == before
    assert edits.edit(path, lambda text: text + "# y\n") is True
    assert path.read_text() == "# x\n# y\n"


def test_edit_tries_three_times_by_default(tmp_path: Path) -> None:
    folder = folder_of(tmp_path, team="# x\n")
    path = folder / "team.toml"
    calls = 0

    def meddling(text: str) -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            path.write_text(text + f"# someone {calls}\n")  # an editor saves meanwhile
        return text + "# ours\n"

    assert edits.edit(path, meddling)
    assert calls == 3 and path.read_text() == "# x\n# someone 1\n# someone 2\n# ours\n"


def test_edit_gives_up_after_three_tries(tmp_path: Path) -> None:
    folder = folder_of(tmp_path, team="# x\n")
    path = folder / "team.toml"
    calls = 0

    def always_meddled(text: str) -> str:
        nonlocal calls
        calls += 1
        path.write_text(text + f"# someone {calls}\n")
        return text + "# ours\n"

    with pytest.raises(edits.FileChanged):
        edits.edit(path, always_meddled)
    assert calls == 3 and "# ours" not in path.read_text()


def test_a_file_created_underneath_a_new_list_is_not_overwritten(tmp_path: Path) -> None:
    folder = folder_of(tmp_path)
    path = folder / "new.toml"
    snap = edits.snapshot(path)
    path.write_text("# theirs\n")
    with pytest.raises(edits.FileChanged, match="changed while it was being edited") as e:
        edits.commit(snap, "# ours\n")
    assert e.value.hint == "run the command again"
    # The exclusive create is the last guard, should a file appear after the check.
    with pytest.raises(edits.FileChanged, match=r"new\.toml appeared while it was being "
                                                 r"written; nothing written") as e:
        edits._write_atomic(path, b"# ours\n", create=True)
    assert e.value.hint == "run the command again"
    assert path.read_text() == "# theirs\n"


def test_list_names(tmp_path: Path) -> None:
    f = tmp_path
    assert edits.list_path(f, None) == edits.list_path(f, "") == f / "subscribers.toml"
    assert edits.list_path(f, "a.b-c_d") == f / "a.b-c_d.toml"
    assert edits.list_path(f, "x.toml") == f / "x.toml"
    assert edits.list_path(f, "Ärzte") == f / "Ärzte.toml"
    for bad in (".hidden", "-x", "a/b", "a b", "x.toml.toml/..", "a\\b"):
        with pytest.raises(SubscriberError, match=r"list name .*: use letters, digits, '\.', "
                                                  r"'-', '_'"):
            edits.list_path(f, bad)


def test_add_writes_only_what_was_given_and_creates_the_list(tmp_path: Path) -> None:
    folder = tmp_path / "subscribers"
    path = edits.add(folder, " Ada@Example.org ", today=date(2026, 1, 2))
    assert path == folder / "subscribers.toml"
    assert path.read_text() == ('[[subscriber]]\nemail = "ada@example.org"\ntopics = []\n'
                                'status = "active"\nadded = 2026-01-02\n')
    other = edits.add(folder, "bo@example.org", name="Bo", format="text", list_name="team",
                      today=date(2026, 1, 3))
    assert other.read_text() == ('[[subscriber]]\nemail = "bo@example.org"\nname = "Bo"\n'
                                 'topics = []\nformat = "text"\nstatus = "active"\n'
                                 'added = 2026-01-03\n')
    undated = edits.add(folder, "cy@example.org", list_name="team")
    assert f"added = {date.today().isoformat()}\n" in undated.read_text()


def test_add_refuses_a_bad_zone_a_broken_folder_and_says_how_to_come_back(
        tmp_path: Path) -> None:
    folder = folder_of(tmp_path, team='[[subscriber]]\nemail = "gone@x.org"\n'
                       'status = "unsubscribed"\n\n[[subscriber]]\nemail = "nap@x.org"\n'
                       'status = "paused"\n')
    with pytest.raises(SubscriberError, match="unknown time zone 'Mars/Base'"):
        edits.add(folder, "new@x.org", timezone="Mars/Base")
    with pytest.raises(SubscriberError, match=r"gone@x\.org is already subscribed") as e:
        edits.add(folder, "GONE@x.org")
    assert e.value.hint == ("they unsubscribed: only 'digest subscribers resubscribe "
                            "gone@x.org' brings them back")
    with pytest.raises(SubscriberError, match=r"nap@x\.org is already subscribed") as e:
        edits.add(folder, "nap@x.org")
    assert e.value.hint == "use 'digest subscribers resume' to reactivate"
    (folder / "broken.toml").write_text("[[subscriber]\n")
    with pytest.raises(SubscriberError, match=r"broken\.toml.*nothing done"):
        edits.add(folder, "new@x.org")
    with pytest.raises(SubscriberError, match=r"broken\.toml.*nothing done"):
        edits.set_status(folder, "nap@x.org", "active")
    assert not (folder / "subscribers.toml").exists()


def test_files_with_skips_what_it_cannot_read_and_lists_in_name_order(tmp_path: Path) -> None:
    folder = folder_of(tmp_path,
                       b='[[subscriber]]\nemail = "ada@x.org"\n',
                       a='[[subscriber]]\nemail = "ADA@x.org"\n',
                       c='subscriber = "not a list"\n',
                       d='subscriber = ["not a table", {email = "ada@x.org"}]\n',
                       bb="not toml at all [\n",
                       f='[[subscriber]]\nemail = "bob@x.org"\n')
    (folder / "notes.txt").write_text('[[subscriber]]\nemail = "ada@x.org"\n')
    assert edits.files_with(folder, "ada@x.org") == [folder / "a.toml", folder / "b.toml",
                                                     folder / "d.toml"]
    assert edits.files_with(tmp_path / "nowhere", "ada@x.org") == []


def test_set_statuses_sets_several_in_one_write(tmp_path: Path) -> None:
    folder = folder_of(tmp_path, team='[[subscriber]]\nemail = "a@x.org"\n\n'
                       '[[subscriber]]\nemail = "b@x.org"\n\n[[subscriber]]\nemail = "c@x.org"\n')
    path = folder / "team.toml"
    assert edits.set_statuses(path, ["a@x.org", "c@x.org"], "unsubscribed") is True
    got = {s.email: s.status for s in subs.load(folder).subscribers}
    assert got == {"a@x.org": "unsubscribed", "b@x.org": "active", "c@x.org": "unsubscribed"}
    assert edits.set_statuses(path, ["a@x.org"], "unsubscribed") is False  # already so


def test_every_edit_path_names_the_file_it_refuses(tmp_path: Path) -> None:
    """A header inside a multi-line string: the line scan and TOML disagree on the
    entries, so each edit refuses, naming the file."""
    text = '[[subscriber]]\nemail = "a@x.org"\nnote = """\n[[subscriber]]\n"""\n'
    folder = folder_of(tmp_path, team=text)
    path = folder / "team.toml"
    msg = rf"^{tmp_path}/subscribers/team\.toml: cannot edit safely"
    with pytest.raises(SubscriberError, match=msg):
        edits.set_status(folder, "a@x.org", "paused")
    with pytest.raises(SubscriberError, match=msg):
        edits.set_status(folder, "a@x.org", None)
    with pytest.raises(SubscriberError, match=msg):
        edits.set_statuses(path, ["a@x.org"], "paused")
    assert path.read_text() == text
