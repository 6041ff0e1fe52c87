"""SQL statements to probe names: matching, fingerprints, and the per-hypothesis name cap.

Shared by the DB-API proxy and the SQLAlchemy listeners. A statement's *fingerprint* is
its text with what varies between calls removed: comments, string and number literals,
placeholders of every paramstyle (``?``, ``%s``, ``%(name)s``, ``$1``, ``:name``) become
``?``, ``IN (?, ?, ?)`` becomes ``IN (...)``, repeated ``VALUES`` rows collapse, and
whitespace collapses. Two queries that differ only in literals therefore share one probe.
No literal survives, whatever the dialect: ``"..."`` (a string in MySQL and SQLite, an
identifier in standard SQL) is kept only where it can only be an identifier, and MySQL's
backslash escapes are understood when the standard reading of a statement goes wrong.
Probe names are labels, so their count must stay bounded: fingerprints are cut to a
bounded length (with a short hash so long statements stay distinct), and each hypothesis
gets at most ``max_fingerprints`` distinct names; later statements share
:data:`OVERFLOW`.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable
from typing import Any

from ..errors import ConfigurationError

__all__ = [
    "DEFAULT_MAX_FINGERPRINTS",
    "MAX_LENGTH",
    "OVERFLOW",
    "Matcher",
    "Statements",
    "fingerprint",
]

#: Longest fingerprint kept whole; longer ones are cut and tagged with a hash.
MAX_LENGTH = 160
#: Distinct fingerprints per hypothesis before statements share :data:`OVERFLOW`.
DEFAULT_MAX_FINGERPRINTS = 50
#: The probe name of statements past a hypothesis' fingerprint cap.
OVERFLOW = "(other statements)"
#: Statements remembered per instrumented connection or engine (text -> probe name).
_CACHE_SIZE = 1024

Matcher = str | re.Pattern[str] | Callable[[str], bool] | None


# One alternation, scanned left to right, so a quote inside a comment (or the reverse)
# is never mistaken for the start of a literal. Two versions of the string rules: standard
# SQL (a quote is escaped by doubling it) and MySQL's (a backslash escapes the next
# character); a statement is read the standard way first, the MySQL way if that went wrong.
def _tokens(backslash: bool) -> re.Pattern[str]:
    sq = r"(?:[^'\\]|\\.|'')*" if backslash else r"(?:[^']|'')*"
    dq = r'(?:[^"\\]|\\.|"")*' if backslash else r'(?:[^"]|"")*'
    return re.compile(
        rf"""
          (?P<line_comment>--[^\n]*)
        | (?P<block_comment>/\*.*?(?:(?P<c_end>\*/)|$))
        | (?P<string>[EeBbXxNn]?'{sq}(?:(?P<s_end>')|$))
        | (?P<dollar>\$(?P<tag>[A-Za-z_]\w*)?\$.*?(?:(?P<dol_end>\$(?P=tag)?\$)|$))
        | (?P<dquoted>"{dq}(?:(?P<d_end>")|$))
        | (?P<ident>`[^`]*`|\[[^\]\s]*\])
        | (?P<param>%\([^)]*\)s|%s|\$\d+|\?|(?<![:\w]):[A-Za-z_]\w*)
        | (?P<number>(?<![\w.])(?:0[xX][0-9A-Fa-f]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(?![\w]))
        """,
        re.VERBOSE | re.DOTALL,
    )


_STANDARD = _tokens(backslash=False)
_MYSQL = _tokens(backslash=True)
#: Stands for a removed literal until the result is checked (never in SQL text).
_LIT = "\x00"
#: A removed literal touching a word, a quote, a backslash, a placeholder or another literal:
#: the rules used do not match the statement's dialect, and what touches it is a fragment
#: of a literal.
_MISREAD = re.compile(r"[\w'\"\\\x00\x01]\x00|\x00[\w'\"\\\x01]")
#: Stands for a placeholder until then.
_PARAM = "\x01"
#: What a double-quoted token may hold to be an identifier rather than a string.
_IDENTIFIER = re.compile(r'"[A-Za-z_][A-Za-z0-9_$]{0,62}"')
#: Text before a token that makes it a value: an operator, or a keyword taking a value.
_VALUE_BEFORE = re.compile(
    r"(?:[=<>!+\-*/%|]|\b(?:LIKE|ILIKE|THEN|ELSE|WHEN|BETWEEN|REGEXP|RLIKE|DEFAULT))\s*$",
    re.IGNORECASE,
)
#: An opening parenthesis that starts a list of values (``IN (`` or ``VALUES (``).
_LIST_OPENER = re.compile(r"\b(?:IN|VALUES)\s*$", re.IGNORECASE)
#: ``), (``: the next row of a VALUES list, when the parenthesis just closed held values.
_NEXT_ROW = re.compile(r"\)\s*,$")
_PARENS = re.compile(r"[()]")
_IN_LIST = re.compile(r"\bIN\s*\(\s*\?(?:\s*,\s*\?)*\s*\)", re.IGNORECASE)
_ROWS = re.compile(r"(\(\s*\?(?:\s*,\s*\?)*\s*\))(?:\s*,\s*\(\s*\?(?:\s*,\s*\?)*\s*\))+")
_UNARY_MINUS = re.compile(r"([=<>(,+*/]\s*)-\s*\?")
_SPACE = re.compile(r"\s+")
_SPACE_IN_PARENS = re.compile(r"\(\s+|\s+\)")


def _scrub(statement: str, tokens: re.Pattern[str]) -> tuple[str, bool, int]:
    """The statement with comments blanked and literals replaced by ``_LIT``; and whether
    the reading looks wrong: a quoted token or comment running unterminated to the end, or
    a comment starting right where a literal ended (as the tail of a misread one does);
    and how many comments it found.

    A double-quoted token is a string in MySQL and SQLite but an identifier in standard
    SQL: it is kept only when it reads as an identifier *and* is qualified (``"t"."id"``)
    or stands where an identifier does (not after an operator or LIKE/THEN/..., not
    inside ``IN (...)`` or ``VALUES (...)``).
    """
    out: list[str] = []
    lists: list[bool] = []  # per open parenthesis: does it hold a list of values?
    last_list = False  # the parenthesis closed last held values (VALUES (..), (..))
    pos = 0
    unterminated = False
    literal_end = -1  # where the last literal ended
    comments = 0

    def before(extra: str = "") -> str:
        """The end of the output so far (enough for the look-behinds), right-stripped."""
        text = extra
        i = len(out)
        while i and len(text) < 64:
            i -= 1
            text = out[i] + text
        while i and not text.strip():  # a run of blanks: look further back
            i -= 1
            text = out[i] + text
        return text.rstrip()

    def scan(gap: str) -> None:
        nonlocal last_list
        for paren in _PARENS.finditer(gap):
            if paren.group() == "(":
                stripped = before(gap[: paren.start()])
                lists.append(
                    bool(_LIST_OPENER.search(stripped))
                    or (last_list and _NEXT_ROW.search(stripped) is not None)
                )
            elif lists:
                last_list = lists.pop()

    for m in tokens.finditer(statement):
        gap = statement[pos : m.start()]
        scan(gap)
        out.append(gap)
        pos = m.end()
        kind = m.lastgroup
        text = m.group(0)
        if kind in ("line_comment", "block_comment"):
            comments += 1
            unterminated = (
                unterminated
                or m.start() == literal_end
                or (kind == "block_comment" and m.group("c_end") is None)
            )
            out.append(" ")
        elif kind in ("string", "dollar", "number"):
            end = {"string": "s_end", "dollar": "dol_end"}.get(kind or "")
            unterminated = unterminated or (end is not None and m.group(end) is None)
            out.append(_LIT)
            literal_end = m.end()
        elif kind == "param":
            out.append(_PARAM)
        elif kind == "dquoted":
            unterminated = unterminated or m.group("d_end") is None
            keep = False
            if _IDENTIFIER.fullmatch(text):
                if statement.startswith(".", m.end()) or (out and out[-1].endswith(".")):
                    keep = True  # qualified: "t"."id"
                else:
                    prior = before()
                    in_list = bool(lists) and lists[-1] and prior.endswith(("(", ","))
                    keep = not (in_list or _VALUE_BEFORE.search(prior))
            if keep:
                out.append(text)
            else:
                out.append(_LIT)
                literal_end = m.end()
        else:
            out.append(text)  # quoted identifiers are part of the statement's shape
    out.append(statement[pos:])
    return "".join(out), unterminated, comments


def fingerprint(statement: str, max_length: int = MAX_LENGTH) -> str:
    """The statement with literals, placeholders and layout normalised away.

    No literal survives, whatever the dialect: when neither standard nor MySQL string rules
    read the statement cleanly, the result is ``(unparsed statement #hash)``.

    Example::

        assert fingerprint("SELECT * FROM t WHERE id IN (1, 2, 3) AND name = 'x'") == (
            "SELECT * FROM t WHERE id IN (...) AND name = ?"
        )
    """
    # Standard and MySQL string rules read a statement differently only around a
    # backslash. A misreading leaves a fragment of a literal touching a removed one, runs
    # a quote to the end, unbalances parentheses, or finds a comment inside what was a
    # literal; so of the readings that leave no fragment, the one that looks right, then
    # the one with fewer comments wins; then backslash escapes (MySQL's drivers write
    # O'Brien as 'O\\'Brien', PostgreSQL's E'' strings read them too).
    readings = []
    for rules in (_STANDARD, _MYSQL) if "\\" in statement else (_STANDARD,):
        scrubbed, odd, comments = _scrub(statement, rules)
        if _MISREAD.search(scrubbed):
            continue  # may be carrying a piece of a literal: never used
        odd = odd or scrubbed.count("(") != scrubbed.count(")")
        readings.append((not odd, -comments, rules is _MYSQL, scrubbed))
    if not readings:
        digest = hashlib.blake2b(statement.encode(), digest_size=4).hexdigest()
        return f"(unparsed statement #{digest})"
    scrubbed = max(readings)[3]
    text = scrubbed.replace(_LIT, "?").replace(_PARAM, "?")
    text = _UNARY_MINUS.sub(r"\1?", text)
    text = _IN_LIST.sub("IN (...)", text)
    text = _ROWS.sub(r"\1, ...", text)
    text = _SPACE.sub(" ", text).strip().rstrip(";").rstrip()
    text = _SPACE_IN_PARENS.sub(lambda m: m.group(0).strip(), text)
    if not text:
        return "(empty statement)"
    if len(text) > max_length:
        digest = hashlib.blake2b(text.encode(), digest_size=4).hexdigest()
        text = f"{text[: max_length - 12].rstrip()}… #{digest}"
    return text


def compile_matcher(match: Matcher) -> Callable[[str], bool] | None:
    """Turn ``match`` into a predicate on statement text (None: every statement matches).

    A string is a regular expression searched anywhere in the statement, ignoring case
    (SQL keywords and unquoted identifiers are case-insensitive).
    """
    if match is None:
        return None
    if isinstance(match, str):
        try:
            return re.compile(match, re.IGNORECASE).search  # type: ignore[return-value]
        except re.error as exc:
            raise ConfigurationError(
                f"match={match!r} is not a valid regular expression: {exc}"
            ) from None
    if isinstance(match, re.Pattern):
        return match.search  # type: ignore[return-value]
    if callable(match):
        return match
    raise ConfigurationError(
        f"match must be a regular expression, a compiled pattern, a callable taking the "
        f"statement text, or None; got {type(match).__name__}"
    )


class _Names:
    """Distinct fingerprints seen per hypothesis, process-wide, to enforce the cap."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_hypothesis: dict[str, set[str]] = {}

    def admit(self, hypothesis_id: str, fp: str, limit: int) -> str:
        seen = self._by_hypothesis.get(hypothesis_id)
        if seen is not None and fp in seen:
            return fp
        with self._lock:
            seen = self._by_hypothesis.setdefault(hypothesis_id, set())
            if fp in seen:
                return fp
            if len(seen) >= limit:
                return OVERFLOW
            seen.add(fp)
            return fp


_NAMES = _Names()


def statement_text(statement: object, context: Any = None) -> str:
    """The text of a statement as a driver receives it (str, bytes, psycopg ``sql`` objects)."""
    if isinstance(statement, str):
        return statement
    if isinstance(statement, bytes | bytearray | memoryview):
        return bytes(statement).decode("utf-8", "replace")
    as_string = getattr(statement, "as_string", None)  # psycopg.sql.Composable
    if callable(as_string):
        try:
            return str(as_string(context))
        except Exception:
            pass
    return str(statement)


class Statements:
    """Decide, once per distinct statement text, whether and under which name to probe it.

    Example::

        statements = Statements("PERF-1", match=r"FROM campaigns")
        assert statements.name_for("SELECT * FROM campaigns WHERE id = 7") == (
            "SELECT * FROM campaigns WHERE id = ?"
        )
        assert statements.name_for("SELECT 1") is None
    """

    __slots__ = ("_cache", "_match", "hypothesis_id", "max_fingerprints", "name")

    def __init__(
        self,
        hypothesis_id: str,
        match: Matcher = None,
        name: str | None = None,
        max_fingerprints: int = DEFAULT_MAX_FINGERPRINTS,
    ) -> None:
        from .._hypothesis import validate_id

        self.hypothesis_id = validate_id(hypothesis_id)
        self._match = compile_matcher(match)
        if name is not None and (not isinstance(name, str) or not name.strip() or len(name) > 200):
            raise ConfigurationError(
                f"name={name!r} must be a non-empty string of at most 200 characters"
            )
        self.name = name
        if isinstance(max_fingerprints, bool) or not isinstance(max_fingerprints, int):
            raise ConfigurationError(
                f"max_fingerprints must be an integer, got {max_fingerprints!r}"
            )
        if max_fingerprints < 1:
            raise ConfigurationError(f"max_fingerprints must be at least 1, got {max_fingerprints}")
        self.max_fingerprints = max_fingerprints
        self._cache: dict[str, str | None] = {}

    def name_for(self, text: str) -> str | None:
        """The probe name for a statement, or None when it does not belong to the hypothesis.

        May raise if a user-supplied matcher raises: callers count that as a fault.
        """
        cache = self._cache
        try:
            return cache[text]
        except KeyError:
            pass
        found: str | None
        if self._match is not None and not self._match(text):
            found = None
        elif self.name is not None:
            found = self.name
        else:
            found = _NAMES.admit(self.hypothesis_id, fingerprint(text), self.max_fingerprints)
        if len(cache) >= _CACHE_SIZE:
            # Statements with inline literals never repeat: start over rather than grow.
            cache.clear()
        cache[text] = found
        return found
