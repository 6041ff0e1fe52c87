"""Survey mode: every SQL statement (and the functions of named modules) probed under every
endpoint, with no hypothesis declared — step zero, "where do I start?".

How a candidate is stored without a declared hypothesis: each (endpoint, candidate) pair is
an *unregistered* internal hypothesis whose id is reserved, ``SURVEY.sql.<hash>`` or
``SURVEY.fn.<hash>`` (a stable hash of kind, endpoint and probe name, so every worker of a
fleet names it alike), naming that one endpoint, with the candidate's probes as its probes:
the statement's fingerprint (and ``fetch: <fingerprint>``), or the function's qualified name.
The recording path is the one of hypotheses (a plan row per candidate, so each candidate has
its own moments and its share an interval), but survey candidates are never in the
registry: the verdict report, the alert rules and the dashboards never see them, and
:func:`is_survey_id` keeps them off the "unregistered hypothesis" notes.

One more unregistered id per endpoint, ``SURVEY.base.<hash>``, has no probe: its moments
count every surveyed request of the endpoint, the denominator of every candidate's share
(a candidate is made at its first call; the requests before it had probe time 0). Ids
starting with ``SURVEY.`` cannot be declared.

Cost bounds:

* sampling: a request is surveyed or not, decided once when its endpoint is known
  (``_plan.for_request``: the scope's start, or the bind of a name learnt after routing),
  so the requests surveyed are a random sample and shares stay unbiased; an unsurveyed
  request passes every statement straight through;
* a cap on candidates per endpoint (``max_candidates``): later statements share the
  endpoint's ``(other statements)`` candidate, later functions ``(other functions)``;
* at most :data:`SERIES_BUDGET` of ``max_series`` for new candidates.

Example::

    hypoprobe.survey(rate=0.1, modules=["myapp.views"])
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import inspect
import math
import os
import random
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import wrapt

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from ._core import _faults, _plan, _state
from ._core._hypothesis import Hypothesis
from ._core._probe import probe
from ._core._scope import CURRENT, resolve_now
from .errors import ConfigurationError
from .integrations._engine_events import _Listeners
from .integrations._fingerprint import OVERFLOW, fingerprint, statement_text

__all__ = ["survey"]

#: Every survey candidate's hypothesis id starts with this (reserved).
PREFIX = "SURVEY."
SQL = "sql"
FUNCTION = "function"
_KIND_TAG = {SQL: "sql", FUNCTION: "fn"}
#: The candidate of functions past an endpoint's cap (statements share ``OVERFLOW``).
FUNCTION_OVERFLOW = "(other functions)"
DEFAULT_MAX_CANDIDATES = 20
DEFAULT_SLOW_THRESHOLD = 0.5
#: Environment variables ``hypoprobe run --survey`` sets for the command's processes.
ENV_SURVEY = "HYPOPROBE_SURVEY"
ENV_RATE = "HYPOPROBE_SURVEY_RATE"
ENV_MODULES = "HYPOPROBE_SURVEY_MODULES"
ENV_MAX_CANDIDATES = "HYPOPROBE_SURVEY_MAX_CANDIDATES"
ENV_SLOW_THRESHOLD = "HYPOPROBE_SURVEY_SLOW_THRESHOLD"
_FINGERPRINT_CACHE = 4096
#: Statements past a cap remembered as such (beyond this they are re-admitted each time).
_MAX_OVERFLOW_KEYS = 20_000


def is_survey_id(hypothesis_id: str) -> bool:
    """Is this the internal hypothesis of a survey candidate (never a declared one)?"""
    return hypothesis_id.startswith(PREFIX)


def candidate_id(kind: str, endpoint: str, name: str) -> str:
    """The reserved hypothesis id of one candidate: the same in every process."""
    digest = hashlib.blake2b(f"{kind}\0{endpoint}\0{name}".encode(), digest_size=8).hexdigest()
    return f"{PREFIX}{_KIND_TAG[kind]}.{digest}"


def base_id(endpoint: str) -> str:
    """The reserved id whose moments count an endpoint's surveyed requests."""
    digest = hashlib.blake2b(f"base\0{endpoint}".encode(), digest_size=8).hexdigest()
    return f"{PREFIX}base.{digest}"


def _hypothesis(hid: str, endpoint: str = "", claim: str = "") -> Hypothesis:
    settings = SETTINGS or Settings()
    return Hypothesis(
        id=hid,
        claim=claim or "survey: the endpoint's surveyed requests",
        endpoints=(endpoint,) if endpoint else (),
        min_share=0.0,
        slow_threshold=settings.slow_threshold,
    )


def kind_of(hypothesis_id: str) -> str | None:
    """``"sql"`` or ``"function"`` for a survey id, else None."""
    if not is_survey_id(hypothesis_id):
        return None
    tag = hypothesis_id[len(PREFIX) :].partition(".")[0]
    return SQL if tag == "sql" else FUNCTION if tag == "fn" else None


@dataclass(frozen=True)
class Settings:
    """What a survey probes and at what cost."""

    rate: float = 1.0
    modules: tuple[str, ...] = ()
    max_candidates: int = DEFAULT_MAX_CANDIDATES
    slow_threshold: float = DEFAULT_SLOW_THRESHOLD
    sql: bool = True


def _settings(
    rate: object,
    modules: object,
    max_candidates: object,
    slow_threshold: object,
    sql: object,
) -> Settings:
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= 1:
        raise ConfigurationError(
            f"survey rate must be a fraction of requests in (0, 1], such as 0.1; got {rate!r}"
        )
    if isinstance(modules, str) or not isinstance(modules, Iterable):
        raise ConfigurationError(
            f'survey modules must be a list of module names, like ["myapp.views"]; got {modules!r}'
        )
    names = tuple(modules)
    for name in names:
        if not isinstance(name, str) or not all(p.isidentifier() for p in name.split(".")):
            raise ConfigurationError(
                f"survey module {name!r} is not a module name such as 'myapp.views'"
            )
    if (
        isinstance(max_candidates, bool)
        or not isinstance(max_candidates, int)
        or not 1 <= max_candidates <= 1000
    ):
        raise ConfigurationError(
            f"survey max_candidates must be an integer from 1 to 1000; got {max_candidates!r}"
        )
    if (
        isinstance(slow_threshold, bool)
        or not isinstance(slow_threshold, int | float)
        or not math.isfinite(slow_threshold)
        or slow_threshold <= 0
    ):
        raise ConfigurationError(
            f"survey slow_threshold must be a positive number of seconds; got {slow_threshold!r}"
        )
    if not isinstance(sql, bool):
        raise ConfigurationError(f"survey sql must be true or false; got {sql!r}")
    return Settings(float(rate), names, max_candidates, float(slow_threshold), sql)


# --------------------------------------------------------------------------- candidates


class _Candidates:
    """Every candidate so far, per endpoint, with the cap; hypotheses for the plans."""

    def __init__(self) -> None:
        #: Endpoint name -> candidate hypotheses, in order of first call.
        self.by_endpoint: dict[str, list[Hypothesis]] = {}
        #: (endpoint index, kind, name) -> the probed callables of that candidate.
        self.entries: dict[tuple[int, str, str], Any] = {}
        #: Endpoint name -> (kind, name) admitted (the overflow candidates excluded).
        self.admitted: dict[str, set[tuple[str, str]]] = {}

    def hypotheses(self, endpoint: str) -> list[Hypothesis]:
        """The endpoint's survey hypotheses for its plan: its base, then its candidates."""
        listed = self.by_endpoint.get(endpoint)
        if listed is None:
            # The base has no probe: its moments count every surveyed request of the
            # endpoint from the first on, the denominator of every candidate's share
            # (a candidate made later has probe time 0 in the requests before it).
            listed = self.by_endpoint.setdefault(
                endpoint, [_hypothesis(base_id(endpoint), endpoint)]
            )
        return listed

    def admit(self, endpoint: str, kind: str, name: str, limit: int) -> str | None:
        """``name``, or the endpoint's overflow candidate past the cap, or None when the
        series budget is spent and the endpoint has no overflow candidate (lock held)."""
        seen = self.admitted.setdefault(endpoint, set())
        if (kind, name) in seen:
            return name
        overflow = OVERFLOW if kind == SQL else FUNCTION_OVERFLOW
        if _series_budget_spent():
            eidx = _plan.KNOWN_ENDPOINTS.get(endpoint, 0)
            return overflow if (eidx, kind, overflow) in self.entries else None
        if len(seen) >= limit:
            return overflow
        seen.add((kind, name))
        return name


#: The survey makes new candidates only while the series table is less full than this
#: fraction of ``max_series``: the rest is kept for declared hypotheses.
SERIES_BUDGET = 0.5


_budget_spent = False


def _series_budget_spent() -> bool:
    """Has the survey reached its share of the series table? (Series are never freed.)"""
    global _budget_spent
    if not _budget_spent:
        from ._core._storage import STORAGE

        _budget_spent = len(STORAGE.own_series()) >= STORAGE.max_series * SERIES_BUDGET
    return _budget_spent


_CANDIDATES = _Candidates()
_lock = threading.RLock()


def _after_fork_in_child() -> None:
    global _lock  # another thread may have held it at fork: in the child it stays held
    _lock = threading.RLock()


_state.owns("survey", after_fork=_after_fork_in_child)

#: The active survey (None: no survey in this process).
SETTINGS: Settings | None = None
_fingerprints: dict[str, str] = {}


def _new_candidate(endpoint: str, kind: str, name: str) -> str:
    """Make (once) the unregistered hypothesis of one candidate; return its id (lock held)."""
    hid = candidate_id(kind, endpoint, name)
    with _plan._lock:  # the plans read the list under this lock
        listed = _CANDIDATES.hypotheses(endpoint)
        if all(h.id != hid for h in listed):
            listed.append(_hypothesis(hid, endpoint, f"survey candidate ({kind}): {name}"))
    return hid


def _entry(eidx: int, kind: str, name: str, make: Callable[[str, str], Any]) -> Any:
    """The probed callables of a candidate of endpoint ``eidx``, made on first use."""
    key = (eidx, kind, name)
    found = _CANDIDATES.entries.get(key)
    if found is not None:
        return found
    with _lock:
        found = _CANDIDATES.entries.get(key)
        if found is not None:
            return found
        endpoint = _plan.ENDPOINT_NAMES[eidx]
        settings = SETTINGS or Settings()
        admitted = _CANDIDATES.admit(endpoint, kind, name, settings.max_candidates)
        if admitted is None:
            return None  # no room left: not surveyed
        found = _entry_unlocked(eidx, kind, admitted, make)
        if admitted == name or len(_CANDIDATES.entries) < _MAX_OVERFLOW_KEYS:
            _CANDIDATES.entries[key] = found
        return found


def _entry_unlocked(eidx: int, kind: str, name: str, make: Callable[[str, str], Any]) -> Any:
    key = (eidx, kind, name)
    found = _CANDIDATES.entries.get(key)
    if found is None:
        hid = _new_candidate(_plan.ENDPOINT_NAMES[eidx], kind, name)
        found = _CANDIDATES.entries[key] = make(hid, name)  # creating its sites re-plans
    return found


def _surveyed_scope() -> Any:
    """The current request if it is surveyed, else None: the one check of unsurveyed ones."""
    scope = CURRENT.get()
    if scope is None or SETTINGS is None:
        return None
    # A request not routed yet has no endpoint to survey under: its statements before
    # routing (before-request hooks) are left out rather than guessed.
    if scope.pending is not None and not resolve_now(scope):
        return None
    if not scope.plan.surveyed or scope.eidx == 0:
        return None
    return scope


# ----------------------------------------------------------------------------- SQL


def _fingerprint(text: str) -> str:
    found = _fingerprints.get(text)
    if found is None:
        found = fingerprint(text)
        if len(_fingerprints) >= _FINGERPRINT_CACHE:
            _fingerprints.clear()  # statements with inline literals never repeat
        _fingerprints[text] = found
    return found


def _sql_entry(statement: object, connection: object = None) -> Any:
    """The dbapi entry timing ``statement`` in the current request, or None. Never raises."""
    try:
        scope = _surveyed_scope()
        if scope is None:
            return None
        text = statement if type(statement) is str else statement_text(statement, connection)
        name = _fingerprints.get(text) or _fingerprint(text)
        found = _CANDIDATES.entries.get((scope.eidx, SQL, name))
        return found if found is not None else _entry(scope.eidx, SQL, name, _dbapi_entry)
    except Exception:
        _faults.record("survey_statement")
        return None


def _dbapi_entry(hid: str, name: str) -> Any:
    from .integrations import dbapi

    return dbapi._Entry(hid, name)


def _dbapi_probes() -> Any:
    from .integrations import dbapi
    from .integrations._fingerprint import Statements

    class _SurveyProbes(dbapi._Probes):
        """The survey's probes of one connection: the candidate depends on the request."""

        def __init__(self) -> None:
            self.statements = Statements("SURVEY")
            self._entries = {}

        def lookup(self, operation: object, connection: object) -> Any:
            return _sql_entry(operation, connection)

    return _SurveyProbes


_PROBES_CLASS: Any = None
_PROXY_CLASSES: Any = None


def _unsurveyed() -> bool:
    """The one check an unsurveyed request's statement pays: no survey, no request, or
    a request the sampling left out (a request not routed yet is resolved by the full
    check, ``_surveyed_scope``)."""
    scope = CURRENT.get()
    return scope is None or SETTINGS is None or (scope.pending is None and not scope.plan.surveyed)


def _proxies() -> tuple[Any, Any]:
    """The survey's connection proxies: in an unsurveyed request, ``cursor()`` and the
    ``execute`` shortcuts go straight to the connection underneath (no cursor proxy, no
    lookup), so such a request's statements pay one check each."""
    from .integrations import dbapi

    class _SurveyConnectionProxy(dbapi._ConnectionProxy):
        # The layer's statement runner, called directly (no super() frame per statement).
        _statement = dbapi._ConnectionProxy._run

        def cursor(self, *args: Any, **kwargs: Any) -> Any:
            if _unsurveyed():
                return self.__wrapped__.cursor(*args, **kwargs)
            return super().cursor(*args, **kwargs)

        def execute(self, operation: Any, *args: Any, **kwargs: Any) -> Any:
            if _unsurveyed():
                return self.__wrapped__.execute(operation, *args, **kwargs)
            return self._statement("execute", operation, args, kwargs)

        def executemany(self, operation: Any, *args: Any, **kwargs: Any) -> Any:
            if _unsurveyed():
                return self.__wrapped__.executemany(operation, *args, **kwargs)
            return self._statement("executemany", operation, args, kwargs)

    class _SurveyAsyncConnectionProxy(_SurveyConnectionProxy, dbapi._AsyncConnectionProxy):
        # The same bypass; a surveyed statement's shortcut is awaited.
        _statement = dbapi._AsyncConnectionProxy._arun

    return _SurveyConnectionProxy, _SurveyAsyncConnectionProxy


def wrap_connection(conn: Any) -> Any:
    """``conn`` wrapped so the survey times its statements (called by ``_sqlhooks``).

    The survey's proxy is the outermost; the proxies of declared ``sql`` matchers under it
    time the same driver calls, each layer's lookup done before any layer starts timing
    (``dbapi._CursorProxy._resolve``), so both measure one thing: the driver's execute
    plus its fetches.
    """
    global _PROBES_CLASS, _PROXY_CLASSES
    if SETTINGS is None or not SETTINGS.sql:
        return conn
    from .integrations import dbapi

    if _PROBES_CLASS is None:
        _PROBES_CLASS = _dbapi_probes()
        _PROXY_CLASSES = _proxies()
    inner: Any = conn
    while isinstance(inner, dbapi._ConnectionProxy):
        if isinstance(inner._self_probes, _PROBES_CLASS):
            return conn
        inner = inner.__wrapped__
    sync, asynchronous = _PROXY_CLASSES
    proxy = asynchronous if dbapi._is_async(conn, "execute") else sync
    return proxy(conn, _PROBES_CLASS())


class _EngineListeners(_Listeners):
    """Class-level SQLAlchemy listeners: each statement an engine sends, in surveyed requests."""

    key = "hypoprobe.survey.open"
    faults = ("survey_sqlalchemy", "survey_sqlalchemy", "survey_sqlalchemy")

    def _probe(self, conn: Any, statement: str) -> Any:
        scope = _surveyed_scope()
        if scope is None:
            return None
        entry = _entry(scope.eidx, SQL, _fingerprint(statement), _engine_probe)
        # The candidate's (id, name): the overflow's past the cap.
        return None if entry is None else probe(*entry)


def _engine_probe(hid: str, name: str) -> tuple[str, str]:
    probe(hid, name=name)  # the site exists before the statement's end
    return hid, name


_listeners = _EngineListeners()
_engines_hooked = False


def _on_sqlalchemy(module: Any) -> None:
    global _engines_hooked
    try:
        from sqlalchemy.engine import Engine

        with _lock:
            if _engines_hooked:
                return
            _engines_hooked = True
        _listeners.listen(Engine)
    except Exception:
        _faults.record("survey_sqlalchemy")


# ------------------------------------------------------------------------- functions


def _invoke(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)


async def _ainvoke(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await fn(*args, **kwargs)


def _function_entry(hid: str, name: str) -> tuple[Callable[..., Any], Callable[..., Any]]:
    return probe(hid, name=name)(_invoke), probe(hid, name=name)(_ainvoke)


def _timed(name: str, flavour: int) -> Callable[..., Any] | None:
    """The probed caller of function ``name`` in the current request, or None. Never raises."""
    try:
        scope = _surveyed_scope()
        if scope is None:
            return None
        entries = _entry(scope.eidx, FUNCTION, name, _function_entry)
        if entries is None:
            return None
        entry: Callable[..., Any] = entries[flavour]
        return entry
    except Exception:
        _faults.record("survey_function")
        return None


def _surveyed_function(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def asurveyed(*args: Any, **kwargs: Any) -> Any:
            timed = _timed(name, 1)
            if timed is None:
                return await fn(*args, **kwargs)
            return await timed(fn, *args, **kwargs)

        asurveyed.__hypoprobe_survey__ = True  # type: ignore[attr-defined]
        return asurveyed

    @functools.wraps(fn)
    def surveyed(*args: Any, **kwargs: Any) -> Any:
        timed = _timed(name, 0)
        if timed is None:
            return fn(*args, **kwargs)
        return timed(fn, *args, **kwargs)

    surveyed.__hypoprobe_survey__ = True  # type: ignore[attr-defined]
    return surveyed


def _survey_module(module: ModuleType) -> int:
    """Wrap the plain functions (and methods of classes) defined in ``module``; return how many.

    Generator functions are left alone (their time is spent while the caller iterates).
    """
    count = 0
    modname = module.__name__

    def eligible(obj: object) -> bool:
        return (
            inspect.isfunction(obj)
            and obj.__module__ == modname
            and not getattr(obj, "__hypoprobe_survey__", False)
            and not inspect.isgeneratorfunction(obj)
            and not inspect.isasyncgenfunction(obj)
        )

    for attr, obj in list(vars(module).items()):
        if eligible(obj):
            setattr(module, attr, _surveyed_function(obj, f"{modname}:{obj.__qualname__}"))
            count += 1
        elif inspect.isclass(obj) and obj.__module__ == modname:
            for mattr, raw in list(vars(obj).items()):
                fn = raw.__func__ if isinstance(raw, staticmethod | classmethod) else raw
                if not eligible(fn) or mattr.startswith("__"):
                    continue
                wrapped = _surveyed_function(fn, f"{modname}:{fn.__qualname__}")
                if isinstance(raw, staticmethod):
                    setattr(obj, mattr, staticmethod(wrapped))
                elif isinstance(raw, classmethod):
                    setattr(obj, mattr, classmethod(wrapped))
                else:
                    setattr(obj, mattr, wrapped)
                count += 1
    return count


def _on_module(module: ModuleType) -> None:
    try:
        _survey_module(module)
    except Exception:
        _faults.record("survey_module")


# ----------------------------------------------------------------------------- switch


def _sampled() -> bool:
    return random.random() < _plan.SURVEY_RATE


def survey(
    rate: float = 1.0,
    *,
    modules: Sequence[str] = (),
    max_candidates: int = DEFAULT_MAX_CANDIDATES,
    slow_threshold: float = DEFAULT_SLOW_THRESHOLD,
    sql: bool = True,
) -> None:
    """Survey the process: every SQL statement, and every function of ``modules``, under
    every endpoint, with no hypothesis declared. Read the result with ``hypoprobe survey``.

    ``rate`` is the fraction of requests surveyed (decided when each request's scope
    opens); ``max_candidates`` caps the candidates per endpoint (then ``(other
    statements)`` / ``(other functions)``); requests slower than ``slow_threshold``
    seconds are "slow". Call it again to change the rate; the modules and the SQL hooks,
    once armed, stay armed. The same switch in the TOML file: a ``[survey]`` table.

    Example::

        hypoprobe.survey(rate=0.1, modules=["myapp.views", "myapp.reports"])
    """
    global SETTINGS
    settings = _settings(rate, modules, max_candidates, slow_threshold, sql)
    with _lock:
        first = SETTINGS is None
        SETTINGS = settings
        _plan.SURVEY_CANDIDATES = _CANDIDATES.hypotheses
        _plan.SURVEY_SAMPLER = _sampled
        _plan.SURVEY_RATE = settings.rate
        _plan.invalidate()
    if settings.sql and first:
        from . import _sqlhooks

        _sqlhooks.arm()
        wrapt.register_post_import_hook(_on_sqlalchemy, "sqlalchemy")
    for name in settings.modules:
        module = sys.modules.get(name)
        if module is not None:
            _on_module(module)
        else:
            wrapt.register_post_import_hook(_on_module, name)


def stop() -> None:
    """End the survey: statements and functions pass straight through again.

    The hooks stay in place (cheap: one check per statement); the candidates' data stays
    readable.
    """
    global SETTINGS
    with _lock:
        SETTINGS = None
        _plan.SURVEY_CANDIDATES = None
        _plan.SURVEY_RATE = 1.0
        _plan.invalidate()


def survey_settings() -> Settings | None:
    """The active survey settings (None: no survey in this process)."""
    return SETTINGS


# -------------------------------------------------------------------- configuration


_TABLE_KEYS = ("rate", "modules", "max_candidates", "slow_threshold", "sql")


def parse_table(path: Path) -> Settings | None:
    """The ``[survey]`` table of a TOML file (None: there is none); errors name the file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return None  # the loader reports these itself
    table = data.get("survey")
    if table is None:
        return None
    if not isinstance(table, Mapping):
        raise ConfigurationError(f"{path}: 'survey' must be a table: write [survey]")
    unknown = sorted(set(table) - set(_TABLE_KEYS))
    if unknown:
        raise ConfigurationError(
            f"{path}: unknown field {unknown[0]!r} in [survey]; the fields are "
            f"{', '.join(_TABLE_KEYS)}"
        )
    defaults = Settings()
    try:
        return _settings(
            table.get("rate", defaults.rate),
            table.get("modules", defaults.modules),
            table.get("max_candidates", defaults.max_candidates),
            table.get("slow_threshold", defaults.slow_threshold),
            table.get("sql", defaults.sql),
        )
    except ConfigurationError as exc:
        raise ConfigurationError(f"{path}: [survey]: {exc}") from None


def apply(settings: Settings) -> None:
    """Start (or retune) the survey with parsed settings."""
    survey(
        settings.rate,
        modules=settings.modules,
        max_candidates=settings.max_candidates,
        slow_threshold=settings.slow_threshold,
        sql=settings.sql,
    )


def from_environment(environ: Mapping[str, str] | None = None) -> Settings | None:
    """The settings ``hypoprobe run --survey`` passes its command (None: no survey)."""
    env = os.environ if environ is None else environ
    if env.get(ENV_SURVEY, "").strip().lower() not in {"1", "true", "yes", "on"}:
        return None
    rate_text = env.get(ENV_RATE, "").strip()
    try:
        rate: object = float(rate_text) if rate_text else 1.0
    except ValueError:
        rate = rate_text
    modules = tuple(m.strip() for m in env.get(ENV_MODULES, "").split(",") if m.strip())
    cap_text = env.get(ENV_MAX_CANDIDATES, "").strip()
    try:
        cap: object = int(cap_text) if cap_text else DEFAULT_MAX_CANDIDATES
    except ValueError:
        cap = cap_text
    slow_text = env.get(ENV_SLOW_THRESHOLD, "").strip()
    try:
        slow: object = float(slow_text) if slow_text else DEFAULT_SLOW_THRESHOLD
    except ValueError:
        slow = slow_text
    return _settings(rate, modules, cap, slow, True)


def import_check(modules: Iterable[str]) -> None:
    """Raise if a module to survey cannot be found (for ``hypoprobe run`` up front)."""
    for name in modules:
        try:
            found = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            found = None
        if found is None:
            raise ConfigurationError(f"survey module {name!r} not found on the import path")
