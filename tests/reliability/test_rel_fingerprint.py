"""SQL fingerprints are labels: whatever the dialect, no literal may survive into one.

MySQL (default mode) and SQLite read ``"..."`` as a string; MySQL reads ``\\'`` inside a
string as an escaped quote, where standard SQL ends the string at it. The property: a
statement with a literal has the same fingerprint as the statement with a placeholder
there, for every literal text, however it is quoted.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hypoprobe.integrations._fingerprint import fingerprint

pytestmark = pytest.mark.reliability

#: Statements with the places a literal takes in real code ({} is the literal).
TEMPLATES = [
    "SELECT * FROM users WHERE email = {} AND active = 1",
    "SELECT id FROM t WHERE name IN ({}, {}) ORDER BY id",
    "INSERT INTO t (a, b) VALUES ({}, 1)",
    'INSERT INTO "t" ("a", "b") VALUES ({}, {})',
    "UPDATE t SET name = {}, note = {} WHERE id = 3",
    "SELECT * FROM t WHERE note LIKE {} LIMIT 10",
    "SELECT CASE WHEN a = 1 THEN {} ELSE {} END FROM t",
    "SELECT * FROM t WHERE a <> {} OR b >= {}",
    'SELECT "t"."id" FROM "t" WHERE "t"."name" = {}',
    "SELECT a FROM t WHERE b = {} -- trailing comment",
]


def standard(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def mysql_single(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def double_quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def mysql_double(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


QUOTES = [standard, mysql_single, double_quoted, mysql_double]


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ('SELECT * FROM u WHERE email = "alice@example.com"', "SELECT * FROM u WHERE email = ?"),
        ("SELECT * FROM u WHERE name = 'O\\'Brien'", "SELECT * FROM u WHERE name = ?"),
        ('SELECT * FROM u WHERE name = "O\\"Brien"', "SELECT * FROM u WHERE name = ?"),
        ('SELECT * FROM u WHERE pw = "hunter2"', "SELECT * FROM u WHERE pw = ?"),
        ('SELECT * FROM u WHERE tag IN ("a", "b")', "SELECT * FROM u WHERE tag IN (...)"),
        (
            "SELECT * FROM u WHERE path = 'C:\\' AND k = 'x'",
            "SELECT * FROM u WHERE path = ? AND k = ?",
        ),
        ('SELECT * FROM u WHERE a = "unterminated secret', "SELECT * FROM u WHERE a = ?"),
    ],
)
def test_known_leaks_are_closed(statement: str, expected: str) -> None:
    assert fingerprint(statement) == expected


@pytest.mark.parametrize(
    "statement",
    [
        'SELECT "app_c"."id", "app_c"."name" FROM "app_c" WHERE "app_c"."id" = ?',
        'INSERT INTO "app_c" ("name", "owner_id") VALUES (?, ?) RETURNING "app_c"."id"',
        'UPDATE "app_c" SET "name" = ?, "owner_id" = ? WHERE "app_c"."id" = ?',
        'SELECT COUNT(*) AS "__count" FROM "app_c" INNER JOIN "u" ON ("app_c"."u_id" = "u"."id")',
    ],
)
def test_quoted_identifiers_keep_the_statement_shape(statement: str) -> None:
    # PostgreSQL (and Django on it) quotes every identifier: those are the statement's
    # shape, not literals, and must stay or every query would share one fingerprint.
    assert fingerprint(statement) == statement


@settings(max_examples=300, deadline=None)
@given(
    template=st.sampled_from(TEMPLATES),
    quote=st.sampled_from(QUOTES),
    # Quotes, backslashes and comment markers are where tokenizers go wrong: weigh them.
    literal=st.text(st.sampled_from(list("'\"\\-/*$;(),.@ ab")), min_size=1, max_size=30)
    | st.text(min_size=1, max_size=30),
)
def test_no_literal_survives_whatever_the_quoting(template: str, quote, literal: str) -> None:  # type: ignore[no-untyped-def]
    n = template.count("{}")
    with_literal = template.format(*[quote(literal)] * n)
    with_placeholder = template.format(*["%s"] * n)
    assert fingerprint(with_literal) == fingerprint(with_placeholder)
