"""Dialect-specific SQL stays behind one seam (digest/store/dialect.py), so the
PostgreSQL dialect that comes next is one class beside SQLite's, not a hunt through
the store. Read from the source, like the import-linter contract."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import digest.store

STORE = Path(digest.store.__file__).parent
# The file itself (its mode, its damage) is SQLite's by nature: dbfile may know it.
SQLITE_FILE = {"dialect.py", "dbfile.py"}


def _modules() -> dict[str, ast.Module]:
    return {p.name: ast.parse(p.read_text(encoding="utf-8")) for p in STORE.glob("*.py")}


def _imports(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_only_the_dialect_imports_a_driver_or_a_dialect() -> None:
    offenders = {name: sorted(m for m in _imports(tree)
                              if m.startswith(("sqlalchemy.dialects", "sqlite3", "psycopg")))
                 for name, tree in _modules().items() if name not in SQLITE_FILE}
    assert {k: v for k, v in offenders.items() if v} == {}


def _strings(tree: ast.Module) -> list[str]:
    """Every string literal; an f-string as every literal in it joined (placeholders
    are often made inside it: ``{', '.join('?' * n)}``)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append(node.value)
        elif isinstance(node, ast.JoinedStr):
            out.append("".join(c.value for c in ast.walk(node)
                               if isinstance(c, ast.Constant) and isinstance(c.value, str)))
    return out


def test_only_the_dialect_writes_plain_sql_with_placeholders() -> None:
    # The driver's paramstyle ("?" for sqlite3, "%s" for psycopg) is the dialect's.
    sql = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE)\b.*(\?|%s)", re.S)
    found = {name: [s for s in _strings(tree) if sql.search(s)]
             for name, tree in _modules().items() if name != "dialect.py"}
    assert {k: v for k, v in found.items() if v} == {}
