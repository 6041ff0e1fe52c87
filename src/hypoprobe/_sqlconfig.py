"""SQL probes declared in the TOML file: the ``sql`` key of a ``[[hypothesis]]`` table.

``sql = ["FROM followers", "JOIN subscriptions"]`` lists regular expressions, searched in
each statement ignoring case (as ``match=`` of :func:`hypoprobe.integrations.dbapi.instrument`).
A statement matching any of them is a probe of the hypothesis named by its fingerprint,
with the per-hypothesis cap on distinct names: exactly what the in-code integrations do.

This module parses and validates the key (errors name the file and line) and keeps the
matchers of every loaded file; :mod:`hypoprobe._sqlhooks` applies them to the database
drivers the process imports.

Example::

    # perf.toml
    # [[hypothesis]]
    # id = "PERF-7"
    # claim = "the followers query dominates GET /feed"
    # endpoint = "GET /feed"
    # min_share = 0.4
    # sql = ["FROM followers"]
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .errors import ConfigurationError
from .integrations._fingerprint import compile_matcher

__all__: list[str] = []

#: The key of a ``[[hypothesis]]`` table this module owns.
KEY = "sql"


class _Lines(Protocol):
    """What the loader's source exposes to point an error at a line."""

    def key_line(self, index: int, key: str) -> int | None: ...

    def value_line(self, index: int, key: str, value: str, nth: int = 0) -> int | None: ...

    def error(self, line: int | None, message: str) -> ConfigurationError: ...


@dataclass(frozen=True)
class SqlMatcher:
    """One ``sql`` entry: the hypothesis it is evidence for, its pattern, where it is declared."""

    hypothesis_id: str
    pattern: str
    where: str  # "file:line", for messages


def parse(
    source: _Lines, path: Path, index: int, hypothesis_id: str, value: object
) -> list[SqlMatcher]:
    """The matchers of one table's ``sql`` value (None: none); a bad one raises with its line."""
    if value is None:
        return []
    line = source.key_line(index, KEY)
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise source.error(
            line,
            "field 'sql' must be a list of regular expressions matching statements, "
            'like ["FROM followers"]',
        )
    out = []
    for n, pattern in enumerate(value):
        where = source.value_line(index, KEY, pattern, value[:n].count(pattern))
        try:
            compile_matcher(pattern)
        except ConfigurationError as exc:
            raise source.error(where, f"field 'sql': {exc}") from None
        out.append(SqlMatcher(hypothesis_id, pattern, f"{path}:{where}"))
    return out


_lock = threading.Lock()
_ACTIVE: dict[Path, tuple[SqlMatcher, ...]] = {}
#: Called (with no argument) whenever the set of active matchers changes.
_listeners: list[Callable[[], None]] = []


def install(path: Path, matchers: list[SqlMatcher]) -> None:
    """Make ``path``'s matchers active (replacing that file's previous ones)."""
    with _lock:
        if matchers:
            _ACTIVE[path] = tuple(matchers)
        else:
            _ACTIVE.pop(path, None)
    if matchers:
        from . import _sqlhooks

        _sqlhooks.arm()
    _changed()


def uninstall(path: Path) -> None:
    """Deactivate ``path``'s matchers: new connections and statements are no longer probed."""
    with _lock:
        found = _ACTIVE.pop(path, None)
    if found:
        _changed()


def _changed() -> None:
    for listener in list(_listeners):
        listener()


def active() -> tuple[SqlMatcher, ...]:
    """Every active matcher, in load order."""
    with _lock:
        return tuple(m for matchers in _ACTIVE.values() for m in matchers)


def by_hypothesis() -> dict[str, Callable[[str], bool]]:
    """One predicate per hypothesis: does a statement match any of its patterns?

    One predicate (not one per pattern) so a statement two patterns match is timed once.
    """
    patterns: dict[str, list[str]] = {}
    for m in active():
        patterns.setdefault(m.hypothesis_id, []).append(m.pattern)
    return {hid: _any_of(pats) for hid, pats in patterns.items()}


def _any_of(patterns: list[str]) -> Callable[[str], bool]:
    compiled = [re.compile(p, re.IGNORECASE) for p in dict.fromkeys(patterns)]
    if len(compiled) == 1:
        search = compiled[0].search
        return lambda text: search(text) is not None
    return lambda text: any(r.search(text) is not None for r in compiled)
