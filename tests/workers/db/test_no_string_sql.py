"""No SQL is built from strings (issue #17; LiteLLM's key check was injectable, CVE-2026-42208).

The code that talks to the database (workers/db, broker/management) may hand SQLAlchemy text
only as a literal written in the source: a `text()`, `literal_column()`, `exec_driver_sql()`
or `execute()` whose SQL is an f-string, a `%` or `+` expression, a `.format()` call or a
variable fails this test. Values travel as bound parameters of SQLAlchemy expressions.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = [ROOT / "workers" / "db", ROOT / "broker" / "management"]
SQL_TAKING = {"text", "literal_column", "exec_driver_sql", "execute", "exec_sql", "TextClause"}


def _name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def string_built_sql(source: str, where: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or _name(node) not in SQL_TAKING or not node.args:
            continue
        first = node.args[0]
        is_literal = isinstance(first, ast.Constant) and isinstance(first.value, str)
        if _name(node) == "execute" and not is_literal and not _is_built_string(first):
            continue  # execute(<an expression object>) is how SQLAlchemy is meant to be used
        if not is_literal:
            found.append(f"{where}:{node.lineno}: {ast.unparse(node)[:100]}")
    return found


def _is_built_string(node: ast.expr) -> bool:
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        return True
    return isinstance(node, ast.Call) and _name(node) in {"format", "join"}


def test_the_checker_catches_each_way_of_building_sql() -> None:
    built = [
        'text(f"SELECT * FROM t WHERE k = {key}")',
        'sa.text("SELECT * FROM t WHERE k = %s" % key)',
        'text("SELECT * FROM t WHERE k = {}".format(key))',
        'conn.exec_driver_sql("DELETE FROM t WHERE k = " + key)',
        "conn.execute(f'SELECT {column} FROM t')",
        "text(query)",
    ]
    for line in built:
        assert string_built_sql(line, "example"), line
    assert not string_built_sql('text("SELECT 1")', "example")
    assert not string_built_sql("conn.execute(sa.select(table).where(table.c.k == key))", "x")


def test_no_module_that_talks_to_the_database_builds_sql_from_strings() -> None:
    modules = [path for package in PACKAGES for path in package.rglob("*.py")]
    assert len(modules) > 10
    found = [
        problem
        for path in modules
        for problem in string_built_sql(path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert found == []
