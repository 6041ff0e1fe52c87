"""Probes without code changes: hypotheses and their targets declared in a TOML file.

``hypoprobe.load(path)`` reads ``[[hypothesis]]`` tables (the fields of
:func:`hypoprobe.hypothesis`, plus ``probes``: import paths such as
``"myapp.queries:CampaignQuery.list_for_account"``), validates the whole file before
changing anything, registers the hypotheses and replaces each target attribute with a
probed version. Targets in modules not imported yet are patched by a ``wrapt`` post-import
hook when the module is first imported, so code loaded after the configuration is covered.
``hypoprobe.unload()`` puts the original attributes back and disarms pending hooks
(``wrapt`` cannot remove a hook; ours check that their load is still active).

Loading never imports application code: a target's module is checked eagerly only when it
is already imported (attribute) or can be located without importing anything (module).

Every target has a state (``_targets``): ``pending`` until its module is imported,
``attached``, ``failed`` with the reason, ``detached`` after ``unload``. A target whose
module cannot be found yet stays ``pending`` — the application's directory is often not on
``sys.path`` when the file is loaded (under gunicorn, before it loads the app) — and is
resolved by import hooks on the module and on each of its not-yet-imported ancestors: when
the nearest importable ancestor package is imported, ``importlib.util.find_spec`` decides
whether the next component exists, so a typo in a module path is found, marked ``failed``
and logged once with ``file:line``.

``settle_pending()`` is for launchers (``hypoprobe run``, a gunicorn ``post_worker_init``
hook): call it once the application has finished starting; every target still ``pending``
is then ``failed`` ("the application finished starting without it") and logged.
``HYPOPROBE_CONFIG=path`` loads a file when hypoprobe is imported; an invalid file is then
logged, not raised, so a bad configuration cannot stop the application from starting.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import os
import re
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import wrapt

from . import _customerconfig, _sqlconfig, _survey
from ._core import _targets
from ._core._hypothesis import REGISTRY, Hypothesis, Observation, build, validate_id
from ._core._probe import probe
from .errors import ConfigurationError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["ENV_VAR", "load", "load_from_environment", "settle_pending", "unload"]

_log = logging.getLogger("hypoprobe")

#: Environment variable naming a configuration file to load at import time.
ENV_VAR = "HYPOPROBE_CONFIG"

# Every keyword of hypoprobe.hypothesis (read from the validator, so new fields follow).
_FIELDS = (
    "id",
    *(name for name in inspect.signature(build).parameters if name != "hypothesis_id"),
    "probes",
    _sqlconfig.KEY,
)
_REQUIRED = ("id", "claim", "endpoint", "min_share")
_TARGET = re.compile(r"[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_TOML_LINE = re.compile(r"at line (\d+)")
#: ``Py_TPFLAGS_HEAPTYPE``: a class defined in Python (its attributes can be replaced).
_HEAPTYPE = 1 << 9
#: Nesting deeper than this is refused before the TOML parser recurses into it.
_MAX_NESTING = 100
_HEADER = re.compile(r"^\s*\[\[\s*hypothesis\s*\]\]")
_ANY_HEADER = re.compile(r"^\s*\[")

_lock = threading.RLock()


class _TargetError(Exception):
    """A target cannot be resolved or probed; the message says why."""


# ------------------------------------------------------------------------------ lines


class _Source:
    """The file's text, to point errors at the line of a table, a key or a value."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.tables: list[tuple[int, int]] = []  # (first, end) line indices, 0-based
        for start, line in enumerate(self.lines):
            if _HEADER.match(line):
                end = next(
                    (
                        j
                        for j in range(start + 1, len(self.lines))
                        if _ANY_HEADER.match(self.lines[j])
                    ),
                    len(self.lines),
                )
                self.tables.append((start, end))

    def table_line(self, index: int) -> int | None:
        return self.tables[index][0] + 1 if index < len(self.tables) else None

    def key_line(self, index: int, key: str) -> int | None:
        if index >= len(self.tables):
            return None
        start, end = self.tables[index]
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*[=.]")
        for i in range(start, end):
            if pattern.match(self.lines[i]):
                return i + 1
        return start + 1

    def value_line(self, index: int, key: str, value: str, nth: int = 0) -> int | None:
        """The line of the ``nth`` (0-based) occurrence of a string value of ``key``."""
        line = self.key_line(index, key)
        if line is None or index >= len(self.tables):
            return line
        _, end = self.tables[index]
        seen = 0
        for i in range(line - 1, end):  # a multi-line array: find the value itself
            text = self.lines[i]
            seen += text.count(f'"{value}"') + text.count(f"'{value}'")
            if seen > nth:
                return i + 1
        return line

    def error(self, line: int | None, message: str) -> ConfigurationError:
        # One line, always with a line number: the first line when no better one is known.
        return ConfigurationError(f"{self.path}:{line or 1}: {_one_line(message)}")


# ---------------------------------------------------------------------------- targets


@dataclass
class _Patch:
    """One target: where it is declared, and once applied, how to put the original back."""

    target: str
    hypothesis_id: str
    where: str  # "file:line", for messages
    module: str
    attrs: tuple[str, ...]
    parent: Any = None
    original: Any = None
    installed: Any = None
    had_own: bool = False
    state: _targets.Target | None = None
    #: Failed by ``settle_pending`` (not imported in time): its module may still turn up.
    settled: bool = False

    def resolve(self, module: ModuleType) -> tuple[Any, Any, bool]:
        """(parent object, raw attribute value, defined on the parent itself).

        Raises only :class:`_TargetError`: lazy proxies (``flask:current_app``) and
        metaclasses with ``__getattr__`` may raise anything while being looked at.
        """
        try:
            return self._resolve(module)
        except _TargetError:
            raise
        except Exception as exc:
            raise _TargetError(
                f"probe target {self.target!r} cannot be looked up: "
                f"{type(exc).__name__}: {_safe_str(exc)}"
            ) from None

    def _resolve(self, module: ModuleType) -> tuple[Any, Any, bool]:
        parent: Any = module
        for name in self.attrs[:-1]:
            try:
                parent = getattr(parent, name)
            except AttributeError:
                raise _TargetError(
                    f"probe target {self.target!r}: {type(parent).__name__} "
                    f"{_name_of(parent)} has no attribute {name!r}"
                ) from None
        attr = self.attrs[-1]
        try:
            # Static lookup: a staticmethod/classmethod must be seen as such, not bound.
            raw = inspect.getattr_static(parent, attr)
        except AttributeError:
            raise _TargetError(
                f"probe target {self.target!r}: {type(parent).__name__} "
                f"{_name_of(parent)} has no attribute {attr!r}"
            ) from None
        if isinstance(raw, type) or not (
            callable(raw) or isinstance(raw, staticmethod | classmethod)
        ):
            raise _TargetError(
                f"probe target {self.target!r} is {type(raw).__name__} {_safe_repr(raw)}, "
                "not a function or method"
            )
        if isinstance(parent, type) and not parent.__flags__ & _HEAPTYPE:
            raise _TargetError(
                f"probe target {self.target!r}: {_name_of(parent)} is a built-in or extension "
                "type, whose attributes cannot be replaced; name the code that calls it"
            )
        return parent, raw, attr in vars(parent)

    def apply(self, module: ModuleType, late: bool = False) -> None:
        """Probe the target (or raise :class:`_TargetError`); its state says what happened."""
        try:
            parent, raw, had_own = self.resolve(module)
            with _targets.claiming():
                installed = probe(self.hypothesis_id)(raw)
            setattr(parent, self.attrs[-1], installed)
        except _TargetError as exc:
            self.fail(str(exc))
            raise
        except Exception as exc:
            message = (
                f"probe target {self.target!r} cannot be probed: "
                f"{type(exc).__name__}: {_safe_str(exc)}"
            )
            self.fail(message)
            raise _TargetError(message) from None
        self.parent, self.original, self.installed, self.had_own = parent, raw, installed, had_own
        fn = raw.__func__ if isinstance(raw, staticmethod | classmethod) else raw
        name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
        reason = f"late: {self.module} was imported before the target was patched" if late else ""
        if self.state is not None:
            self.state.probe = name
            _targets.set_state(self.state, _targets.ATTACHED, reason)

    def fail(self, reason: str) -> None:
        if self.state is not None:
            _targets.set_state(self.state, _targets.FAILED, _reason(reason, self.target))

    def undo(self) -> None:
        if self.state is not None and self.state.state != _targets.FAILED:
            _targets.set_state(self.state, _targets.DETACHED, "unloaded")
        if self.installed is None:
            return
        attr = self.attrs[-1]
        current = vars(self.parent).get(attr)
        if current is self.installed:
            if self.had_own:
                setattr(self.parent, attr, self.original)
            else:
                delattr(self.parent, attr)
        else:
            _log.warning(
                "hypoprobe: %s: %s was replaced by someone else after it was probed; "
                "leaving it as it is",
                self.where,
                self.target,
            )
        self.parent = self.original = self.installed = None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _safe_str(obj: object) -> str:
    try:
        return _one_line(str(obj))[:200]
    except Exception:
        return f"<{type(obj).__name__}>"


def _safe_repr(obj: object) -> str:
    try:
        return _one_line(repr(obj))[:200]
    except Exception:
        return f"<{type(obj).__name__}>"


def _name_of(obj: Any) -> str:
    # A lazy proxy (werkzeug's LocalProxy) raises on any attribute outside its context.
    try:
        return _one_line(
            str(getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or obj)
        )[:200]
    except Exception:
        return f"<{type(obj).__name__}>"


def _reason(message: str, target: str) -> str:
    """A failure message as a target's reason: without the target's own name in front."""
    prefix = f"probe target {target!r}"
    text = message[len(prefix) :].lstrip(" :") if message.startswith(prefix) else message
    return text or message


def _exists(name: str) -> bool | None:
    """Whether module ``name`` exists, if that is knowable without importing anything.

    True or False when its parent package is imported (or it is top-level); None when
    finding out would import a parent package.
    """
    parent = name.rpartition(".")[0]
    if parent and parent not in sys.modules:
        return None
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
    except Exception:  # a broken finder on sys.meta_path: do not guess
        return None


def _missing_part(module: str) -> str | None:
    """The first missing component of ``module``'s path that can be known now, else None.

    Walks down from the top-level package through the imported ancestors; the first
    component that is not imported is asked of ``find_spec`` (its parent is imported, so
    nothing is imported by asking). A missing *top-level* package is not an error yet: the
    application's directory may be put on ``sys.path`` later; the target stays pending.
    """
    parts = module.split(".")
    for i in range(1, len(parts) + 1):
        name = ".".join(parts[:i])
        if name in sys.modules:
            continue
        if i == 1:
            return None
        return name if _exists(name) is False else None
    return None


@dataclass
class _Loaded:
    path: Path
    hypotheses: tuple[Hypothesis, ...]
    patches: list[_Patch] = field(default_factory=list)
    active: bool = True


_LOADED: dict[Path, _Loaded] = {}


def _pending(loaded: _Loaded, patch: _Patch, settled_too: bool = False) -> bool:
    state = patch.state
    return (
        loaded.active
        and patch.installed is None
        and (
            state is None
            or state.state == _targets.PENDING
            or (settled_too and patch.settled and state.state == _targets.FAILED)
        )
    )


def _fail_logged(patch: _Patch, message: str) -> None:
    patch.fail(message)
    _log.error("hypoprobe: %s: %s; not probed", patch.where, message)


def _hook(loaded: _Loaded, patch: _Patch) -> Any:
    def on_import(module: ModuleType) -> None:
        # Runs inside the application's import: it must never raise.
        try:
            with _lock:
                # Settled failed but imported after all (lazily, after the start): probe it.
                if not _pending(loaded, patch, settled_too=True):
                    return
                patch.apply(module)
        except _TargetError as exc:
            _log.error("hypoprobe: %s: %s; not probed", patch.where, exc)
        except Exception:
            _log.exception("hypoprobe: %s: could not probe %s", patch.where, patch.target)

    return on_import


def _ancestor_hook(loaded: _Loaded, patch: _Patch, ancestor: str) -> Any:
    """On import of an ancestor package: does the next component of the path exist?"""
    child = ".".join(patch.module.split(".")[: ancestor.count(".") + 2])

    def on_import(module: ModuleType) -> None:
        try:
            with _lock:
                if not _pending(loaded, patch) or child in sys.modules:
                    return
                if _exists(child) is False:
                    _fail_logged(patch, f"probe target {patch.target!r}: no module named {child!r}")
        except Exception:
            _log.exception("hypoprobe: %s: could not check %s", patch.where, patch.target)

    return on_import


def _arm(loaded: _Loaded, patch: _Patch) -> None:
    """Hooks on the target's module and on each ancestor that is not imported yet."""
    parts = patch.module.split(".")
    for i in range(1, len(parts)):
        ancestor = ".".join(parts[:i])
        if ".".join(parts[: i + 1]) not in sys.modules:
            wrapt.register_post_import_hook(_ancestor_hook(loaded, patch, ancestor), ancestor)
    wrapt.register_post_import_hook(_hook(loaded, patch), patch.module)


# ---------------------------------------------------------------------------- parsing


def _read(path: Path) -> tuple[_Source, dict[str, Any]]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read the configuration file: {exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigurationError(f"{path}:{bad}: the file is not UTF-8 text: {exc}") from None
    source = _Source(path, text)
    deep = _too_deep(source.lines)
    if deep is not None:
        raise source.error(deep, f"invalid TOML: values nested more than {_MAX_NESTING} deep")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_LINE.search(str(exc))
        if found:
            line: int | None = int(found.group(1))
        elif "end of document" in str(exc):
            line = max(1, len(source.lines))
        else:
            line = None
        raise source.error(line, f"invalid TOML: {exc}") from None
    except RecursionError:  # nesting the bracket count above missed (inside strings, say)
        raise source.error(None, "invalid TOML: values nested too deep") from None
    return source, data


def _too_deep(lines: list[str]) -> int | None:
    """The line where ``[``/``{`` nesting passes the limit (strings skipped roughly)."""
    depth = 0
    for number, line in enumerate(lines, 1):
        quote = ""
        for ch in line:
            if quote:
                if ch == quote:
                    quote = ""
            elif ch in "\"'":
                quote = ch
            elif ch == "#":
                break
            elif ch in "[{":
                depth += 1
                if depth > _MAX_NESTING:
                    return number
            elif ch in "]}":
                depth = max(0, depth - 1)
    return None


def _hypothesis(source: _Source, index: int, table: Mapping[str, Any]) -> Hypothesis:
    line = source.table_line(index)
    if not isinstance(table, Mapping):
        raise source.error(line, "each [[hypothesis]] must be a table")
    unknown = sorted(set(table) - set(_FIELDS))
    if unknown:
        raise source.error(
            source.key_line(index, unknown[0]),
            f"unknown field {unknown[0]!r} in [[hypothesis]]; the fields are {', '.join(_FIELDS)}",
        )
    missing = [k for k in _REQUIRED if k not in table]
    if missing:
        raise source.error(line, f"[[hypothesis]] is missing required field {missing[0]!r}")
    try:
        validate_id(table["id"])
    except ConfigurationError as exc:
        raise source.error(source.key_line(index, "id"), f"field 'id': {exc}") from None
    fields = {k: v for k, v in table.items() if k not in ("id", "probes", _sqlconfig.KEY)}
    observed = fields.get("observed")
    if observed is not None:
        fields["observed"] = _observation(source, index, observed)
    # Validate one field at a time against valid stand-ins, to point at the right line.
    stand_in: dict[str, Any] = {"claim": "-", "endpoint": "-", "min_share": 1.0}
    for key, value in fields.items():
        try:
            build(table["id"], **{**stand_in, key: value})
        except ConfigurationError as exc:
            raise source.error(source.key_line(index, key), f"field {key!r}: {exc}") from None
    try:
        return build(table["id"], **fields)
    except ConfigurationError as exc:  # fields that are only wrong together
        raise source.error(line, str(exc)) from None


def _observation(source: _Source, index: int, value: object) -> Observation:
    line = source.key_line(index, "observed")
    if not isinstance(value, Mapping) or set(value) != {"probe_seconds", "endpoint_seconds"}:
        raise source.error(
            line,
            "field 'observed' must be a table {probe_seconds = ..., endpoint_seconds = ...}",
        )
    try:
        return Observation(value["probe_seconds"], value["endpoint_seconds"])
    except ConfigurationError as exc:
        raise source.error(line, f"field 'observed': {exc}") from None


def _patches(source: _Source, index: int, hyp: Hypothesis, probes: object) -> list[_Patch]:
    line = source.key_line(index, "probes")
    if not isinstance(probes, list) or not all(isinstance(p, str) for p in probes):
        raise source.error(line, "field 'probes' must be a list of \"module:attribute\" strings")
    out = []
    for n, target in enumerate(probes):
        where_line = source.value_line(index, "probes", target, probes[:n].count(target))
        if not _TARGET.fullmatch(target):
            raise source.error(
                where_line,
                f"probe target {target!r} is not an import path like "
                '"myapp.queries:CampaignQuery.list_for_account"',
            )
        module, _, attrs = target.partition(":")
        patch = _Patch(
            target, hyp.id, f"{source.path}:{where_line}", module, tuple(attrs.split("."))
        )
        missing = _missing_part(module)
        if missing is not None:
            raise source.error(where_line, f"probe target {target!r}: no module named {missing!r}")
        imported = sys.modules.get(module)
        if imported is not None:
            try:
                patch.resolve(imported)
            except _TargetError as exc:
                raise source.error(where_line, str(exc)) from None
        out.append(patch)
    return out


def _parse(
    path: Path,
) -> tuple[
    tuple[Hypothesis, ...],
    list[_Patch],
    list[_sqlconfig.SqlMatcher],
    _customerconfig.LazyCustomer | None,
]:
    source, data = _read(path)
    unknown = sorted(set(data) - {"hypothesis", "survey", _customerconfig.KEY})
    if unknown:
        line = next(
            (
                i + 1
                for i, text in enumerate(source.lines)
                if re.match(rf"^\s*\[*\s*[\"']?{re.escape(unknown[0])}(?![\w-])", text)
            ),
            None,
        )
        raise source.error(
            line,
            f"unknown key {unknown[0]!r}: the file holds [[hypothesis]] tables, "
            "[survey] and customer = 'module:function'",
        )
    customer_line = next(
        (i + 1 for i, text in enumerate(source.lines) if re.match(r"^\s*customer\s*=", text)),
        None,
    )
    try:
        customer = _customerconfig.parse(
            data.get(_customerconfig.KEY), f"{path}:{customer_line or 1}"
        )
    except ValueError as exc:
        raise source.error(customer_line, str(exc)) from None
    tables = data.get("hypothesis", [])
    if not isinstance(tables, list):
        line = next(
            (
                i + 1
                for i, text in enumerate(source.lines)
                if re.match(r"^\s*\[?\s*hypothesis\b", text)
            ),
            None,
        )
        raise source.error(line, "'hypothesis' must be an array of tables: write [[hypothesis]]")
    hyps: list[Hypothesis] = []
    patches: list[_Patch] = []
    sql: list[_sqlconfig.SqlMatcher] = []
    first_line: dict[str, int | None] = {}
    targets: dict[str, str] = {}
    for index, table in enumerate(tables):
        hyp = _hypothesis(source, index, table)
        line = source.table_line(index)
        if hyp.id in first_line:
            raise source.error(
                source.key_line(index, "id"),
                f"duplicate hypothesis id {hyp.id!r} (first declared at line {first_line[hyp.id]})",
            )
        first_line[hyp.id] = line
        existing = REGISTRY.get(hyp.id)
        if existing is not None and existing != hyp:
            raise source.error(
                line,
                f"hypothesis {hyp.id} is already registered with a different definition",
            )
        for patch in _patches(source, index, hyp, table.get("probes", [])):
            if patch.target in targets:
                raise source.error(
                    int(patch.where.rpartition(":")[2]),
                    f"probe target {patch.target!r} is listed twice "
                    f"(also at {targets[patch.target]})",
                )
            targets[patch.target] = patch.where
            patches.append(patch)
        sql += _sqlconfig.parse(source, path, index, hyp.id, table.get(_sqlconfig.KEY))
        hyps.append(hyp)
    return tuple(hyps), patches, sql, customer


# ----------------------------------------------------------------------------- public


def load(path: str | os.PathLike[str]) -> tuple[Hypothesis, ...]:
    """Register the hypotheses of a TOML file and probe their targets; return them.

    The file is validated as a whole before anything changes; every error is a
    :class:`ConfigurationError` naming the file and line. Targets in modules imported
    later are probed on import. Loading the same file again replaces its previous load.

    Example::

        # perf.toml
        # [[hypothesis]]
        # id = "PERF-123"
        # claim = "list_for_account dominates GET /campaigns"
        # endpoint = "GET /campaigns"
        # min_share = 0.5
        # observed = { probe_seconds = 1.2, endpoint_seconds = 1.5 }
        # probes = ["myapp.queries:CampaignQuery.list_for_account"]

        hypoprobe.load("perf.toml")
    """
    try:
        resolved = Path(path).resolve()
    except (OSError, RuntimeError, ValueError, TypeError) as exc:
        raise ConfigurationError(f"{path}: cannot resolve the path: {_safe_str(exc)}") from None
    with _lock:
        try:
            return _load(resolved)
        except ConfigurationError:
            raise
        except RecursionError:
            raise ConfigurationError(f"{resolved}:1: the file is nested too deep to read") from None
        except Exception as exc:  # a bug or a hostile object: still one clear line
            raise ConfigurationError(
                f"{resolved}:1: cannot load: {type(exc).__name__}: {_safe_str(exc)}"
            ) from None


def _load(resolved: Path) -> tuple[Hypothesis, ...]:
    hyps, patches, sql, customer = _parse(resolved)
    survey = _survey.parse_table(resolved)  # the [survey] table, if any
    others = {
        p.target: p.where
        for loaded in _LOADED.values()
        if loaded.path != resolved
        for p in loaded.patches
    }
    for patch in patches:
        if patch.target in others:
            raise ConfigurationError(
                f"{patch.where}: probe target {patch.target!r} is already probed by "
                f"{others[patch.target]}"
            )
    _unload_one(resolved)
    for hyp in hyps:
        REGISTRY.register(hyp)
    loaded = _Loaded(resolved, hyps)
    _LOADED[resolved] = loaded
    for patch in patches:
        patch.state = _targets.declare(
            patch.hypothesis_id, patch.target, _targets.CONFIG, where=patch.where
        )
        module = sys.modules.get(patch.module)
        if module is not None:
            try:
                patch.apply(module, late=True)
            except _TargetError as exc:  # changed since validation: unlikely
                _log.error("hypoprobe: %s: %s; not probed", patch.where, exc)
        else:
            _arm(loaded, patch)
        loaded.patches.append(patch)
    _note_early_references([p for p in patches if p.installed is not None])
    _sqlconfig.install(resolved, sql)
    _customerconfig.install(str(resolved), customer)
    if survey is not None:
        _survey.apply(survey)
    return hyps


def _note_early_references(patches: list[_Patch]) -> None:
    """Say, in the state of a late-patched target, where the original is still bound.

    ``from x import y`` taken before the patch keeps calling the unprobed function: one
    pass over the imported modules' globals finds those (callbacks stored elsewhere, such
    as Flask's view functions, are not found: docs/integrations.md lists them).
    """
    if not patches:
        return
    wanted: dict[int, _Patch] = {}
    for p in patches:
        raw = p.original
        fn = raw.__func__ if isinstance(raw, staticmethod | classmethod) else raw
        wanted[id(fn)] = p
    found: dict[int, list[str]] = {}
    for name, module in list(sys.modules.items()):
        try:
            namespace = vars(module)
        except TypeError:
            continue
        for attr, value in list(namespace.items()):
            key = id(value)
            if key in wanted and wanted[key].parent is not module:
                found.setdefault(key, []).append(f"{name}:{attr}")
    for key, where in found.items():
        p = wanted[key]
        if p.state is None:
            continue
        shown = ", ".join(sorted(where)[:3]) + (" ..." if len(where) > 3 else "")
        _targets.set_state(
            p.state,
            _targets.ATTACHED,
            f"late: {p.module} was imported before the target was patched; {shown} still "
            "call the original: name the function where it is called, or load earlier",
        )
        _log.warning(
            "hypoprobe: %s: %s is also bound as %s, taken before it was probed; those "
            "calls are not measured",
            p.where,
            p.target,
            shown,
        )


def _unload_one(path: Path) -> None:
    loaded = _LOADED.pop(path, None)
    if loaded is None:
        return
    loaded.active = False
    _sqlconfig.uninstall(path)
    _customerconfig.uninstall(str(path))
    for patch in reversed(loaded.patches):
        patch.undo()


def unload(path: str | os.PathLike[str] | None = None) -> None:
    """Undo :func:`load`: restore every probed attribute and disarm pending import hooks.

    With ``path``, only that file's load is undone. Registered hypotheses stay registered
    (their recorded data is still worth reading); loading the file again is fine.

    Example::

        hypoprobe.load("perf.toml")
        ...
        hypoprobe.unload()  # the original functions are back
    """
    with _lock:
        if path is not None:
            _unload_one(Path(path).resolve())
            return
        for loaded_path in list(_LOADED):
            _unload_one(loaded_path)


def settle_pending(reason: str = "the application finished starting without it") -> list[str]:
    """Mark every target still ``pending`` as ``failed``; return their ``file:line: target``.

    For launchers (``hypoprobe run``, a gunicorn ``post_worker_init`` hook) to call once the
    application has finished starting: a target whose module was not imported by then is
    most likely misnamed, and its hypothesis must read UNMEASURED rather than a confident
    0%. A module that turns up later is still probed (the import hook stays armed).

    Example::

        hypoprobe.load("perf.toml")
        app = create_app()
        for line in _load.settle_pending():
            print("not probed:", line)
    """
    out = []
    with _lock:
        for loaded in list(_LOADED.values()):
            for patch in loaded.patches:
                if not _pending(loaded, patch):
                    continue
                top = patch.module.partition(".")[0]
                if top not in sys.modules and _exists(top) is False:
                    why = f"no module named {top!r}"
                else:
                    missing = _missing_part(patch.module)
                    if missing is not None:
                        why = f"no module named {missing!r}"
                    else:
                        why = f"{patch.module} was never imported: {reason}"
                _fail_logged(patch, f"probe target {patch.target!r}: {why}")
                patch.settled = True
                out.append(f"{patch.where}: {patch.target}")
    return out


def load_from_environment() -> None:
    """Load ``$HYPOPROBE_CONFIG`` if set; log, never raise, so the import always succeeds."""
    path = os.environ.get(ENV_VAR, "").strip()
    if not path:
        return
    try:
        load(path)
    except ConfigurationError as exc:
        _log.error("hypoprobe: %s=%s not loaded: %s", ENV_VAR, path, exc)
    except Exception:
        _log.exception("hypoprobe: %s=%s not loaded", ENV_VAR, path)
