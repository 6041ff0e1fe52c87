"""SQL statements to probe names: matching, fingerprints, and the per-hypothesis name cap.

Shared by the DB-API proxy and the SQLAlchemy listeners. A statement's *fingerprint* is
its text with what varies between calls removed: comments, string and number literals,
placeholders of every paramstyle (``?``, ``%s``, ``%(name)s``, ``$1``, ``:name``) become
``?``, ``IN (?, ?, ?)`` becomes ``IN (...)``, repeated ``VALUES`` rows collapse, and
whitespace collapses. Two queries that differ only in literals therefore share one probe.
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
# is never mistaken for the start of a literal.
_TOKENS = re.compile(
    r"""
      (?P<line_comment>--[^\n]*)
    | (?P<block_comment>/\*.*?(?:\*/|$))
    | (?P<string>[EeBbXxNn]?'(?:[^']|'')*(?:'|$))
    | (?P<dollar>\$(?P<tag>[A-Za-z_]\w*)?\$.*?(?:\$(?P=tag)?\$|$))
    | (?P<ident>"(?:[^"]|"")*"|`[^`]*`|\[[^\]\s]*\])
    | (?P<param>%\([^)]*\)s|%s|\$\d+|\?|(?<![:\w]):[A-Za-z_]\w*)
    | (?P<number>(?<![\w.])(?:0[xX][0-9A-Fa-f]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(?![\w]))
    """,
    re.VERBOSE | re.DOTALL,
)
_IN_LIST = re.compile(r"\bIN\s*\(\s*\?(?:\s*,\s*\?)*\s*\)", re.IGNORECASE)
_ROWS = re.compile(r"(\(\s*\?(?:\s*,\s*\?)*\s*\))(?:\s*,\s*\(\s*\?(?:\s*,\s*\?)*\s*\))+")
_UNARY_MINUS = re.compile(r"([=<>(,+*/]\s*)-\s*\?")
_SPACE = re.compile(r"\s+")
_SPACE_IN_PARENS = re.compile(r"\(\s+|\s+\)")


def _token(m: re.Match[str]) -> str:
    kind = m.lastgroup
    if kind in ("line_comment", "block_comment"):
        return " "
    if kind in ("string", "dollar", "param", "number"):
        return "?"
    return m.group(0)  # quoted identifiers are part of the statement's shape


def fingerprint(statement: str, max_length: int = MAX_LENGTH) -> str:
    """The statement with literals, placeholders and layout normalised away.

    Example::

        assert fingerprint("SELECT * FROM t WHERE id IN (1, 2, 3) AND name = 'x'") == (
            "SELECT * FROM t WHERE id IN (...) AND name = ?"
        )
    """
    text = _TOKENS.sub(_token, statement)
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
