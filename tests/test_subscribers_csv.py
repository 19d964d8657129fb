"""CSV import and CSV/JSON export, against files as spreadsheets write them."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import pytest

from digest.errors import SubscriberError
from digest.subscribers import csv as table_io
from digest.subscribers import roster as subs

DATA = Path(__file__).parent / "data" / "csv"
TOPICS = ("tech", "world", "science", "business")
TODAY = date(2026, 11, 27)
EXISTING = "# our list\n\n[[subscriber]]\nemail = \"grace@example.com\"  # already here\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    folder = tmp_path / "subscribers"
    folder.mkdir()
    (folder / "subscribers.toml").write_text(EXISTING)
    return folder


def plan(folder: Path, name: str, suppressed: set[str] | None = None) -> table_io.ImportPlan:
    source = DATA / name
    return table_io.plan_import(source, folder / "subscribers.toml", subs.load(folder, TOPICS),
                                suppressed or set(), TOPICS, today=TODAY)


def test_mailchimp_export_with_bom(folder: Path) -> None:
    assert (DATA / "mailchimp_bom.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    p = plan(folder, "mailchimp_bom.csv")
    assert p.columns == {"Email Address": "email", "First Name": "first", "Last Name": "last",
                         "Tags": "topics", "Member Status": "status", "Optin Time": "added"}
    assert p.rows == 4
    assert [(r.line, r.email) for r in p.new] == [(2, "ada@example.org"),
                                                  (5, "kenji@example.net")]
    ada, kenji = (r.table for r in p.new)
    assert ada == {"email": "ada@example.org", "name": "Ada Lovelace",
                   "topics": ["tech", "science"], "status": "active", "added": date(2024, 3, 1)}
    assert kenji["status"] == "unsubscribed" and kenji["topics"] == ["world"]  # "World" matched
    assert p.skipped == (f"{DATA / 'mailchimp_bom.csv'}:3: grace@example.com is already "
                         f"subscribed ({folder / 'subscribers.toml'}:3)",)
    assert len(p.problems) == 1 and p.problems[0].startswith(
        f"{DATA / 'mailchimp_bom.csv'}:4: email: 'not-an-address' is not a valid email address")


def test_semicolons_quoted_newlines_and_utf8(folder: Path) -> None:
    p = plan(folder, "excel_semicolon.csv")
    assert p.ignored_columns == ("Notes",)
    assert [(r.line, r.email) for r in p.new] == [(2, "lin@example.org"),
                                                  (4, "zoe@bücher.example")]
    lin, zoe = (r.table for r in p.new)
    assert lin["name"] == "Wu; Lin" and lin["format"] == "text" and lin["timezone"] == "Asia/Tokyo"
    # A newline typed inside a spreadsheet cell is not a newline in a greeting.
    assert zoe["name"] == 'Zoë "Z" Ångström' and zoe["topics"] == ["world", "tech"]
    assert zoe["added"] == TODAY
    problems = list(p.problems)
    assert len(problems) == 2
    assert problems[0].startswith(f"{DATA / 'excel_semicolon.csv'}:6: timezone: unknown time "
                                  "zone 'Mars/Base'")
    assert problems[1] == (f"{DATA / 'excel_semicolon.csv'}:7: email: duplicate of line 2 "
                           "(lin@example.org)")


def test_tabs_and_name_in_the_address_cell(folder: Path) -> None:
    p = plan(folder, "tabs.csv")
    assert [r.table for r in p.new] == [{"email": "ola@example.no", "name": "Ola Nordmann",
                                         "topics": [], "timezone": "Europe/Oslo",
                                         "status": "active", "added": TODAY}]


def test_import_writes_one_atomic_append_keeping_the_file(folder: Path) -> None:
    p = plan(folder, "mailchimp_bom.csv")
    table_io.apply(p)
    text = (folder / "subscribers.toml").read_text()
    assert text.startswith(EXISTING)
    roster = subs.load(folder, TOPICS)
    assert roster.problems == ()
    assert [s.email for s in roster.subscribers] == ["grace@example.com", "ada@example.org",
                                                     "kenji@example.net"]
    assert roster.find("kenji@example.net").status == "unsubscribed"  # type: ignore[union-attr]
    assert plan(folder, "mailchimp_bom.csv").new == ()  # a second import adds nobody


def test_suppressed_addresses_are_not_imported(folder: Path) -> None:
    p = plan(folder, "mailchimp_bom.csv", suppressed={"ada@example.org"})
    assert [r.email for r in p.new] == ["kenji@example.net"]
    assert any("ada@example.org unsubscribed earlier; not imported" in s for s in p.skipped)


def test_cp1252_and_no_email_column(tmp_path: Path, folder: Path) -> None:
    latin = tmp_path / "latin.csv"
    latin.write_bytes("email,name\r\nrene@example.fr,Ren\xe9\r\n".encode("latin-1"))
    p = table_io.plan_import(latin, folder / "x.toml", subs.load(folder), set(), today=TODAY)
    assert p.new[0].table["name"] == "René"
    bad = tmp_path / "bad.csv"
    bad.write_text("who,what\nx,y\n")
    with pytest.raises(SubscriberError, match=r"bad.csv:1: no email column \(header: who, what\)"):
        table_io.plan_import(bad, folder / "x.toml", subs.load(folder), set())


def test_export_round_trips_through_import(tmp_path: Path, folder: Path) -> None:
    table_io.apply(plan(folder, "excel_semicolon.csv"))
    roster = subs.load(folder, TOPICS)
    rows = table_io.export_rows(roster, suppressed={"grace@example.com"})
    assert [r["email"] for r in rows] == ["grace@example.com", "lin@example.org",
                                          "zoe@bücher.example"]
    assert rows[0]["status"] == "unsubscribed" and rows[0]["suppressed"] is True
    assert rows[1]["lists"] == ["subscribers"] and rows[1]["added"] == TODAY.isoformat()
    data = json.loads(table_io.to_json(rows))
    assert data[2]["name"] == 'Zoë "Z" Ångström' and data[2]["topics"] == ["world", "tech"]

    csv_file = tmp_path / "out.csv"
    csv_file.write_text(table_io.to_csv(rows), newline="")
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.toml").write_text("")
    again = table_io.plan_import(csv_file, other / "x.toml", subs.load(other), set(), TOPICS,
                                 today=TODAY)
    assert again.problems == () and again.ignored_columns == ("lists", "suppressed", "source")
    assert [r.table for r in again.new] == [
        {"email": r["email"], **({"name": r["name"]} if r["name"] else {}), "topics": r["topics"],
         **({"timezone": r["timezone"]} if r["timezone"] else {}),
         **({"format": r["format"]} if r["format"] != "html" else {}),
         "status": r["status"], "added": date.fromisoformat(r["added"] or TODAY.isoformat())}
        for r in rows]


def test_fixtures_are_what_they_claim(tmp_path: Path) -> None:
    raw = (DATA / "excel_semicolon.csv").read_bytes()
    assert b";" in raw and b'"line one\r\nline two; still notes"' in raw
    assert table_io.sniff_separator(raw.decode()) == ";"
    shutil.copy(DATA / "tabs.csv", tmp_path / "t.csv")
    assert table_io.sniff_separator((tmp_path / "t.csv").read_text()) == "\t"
