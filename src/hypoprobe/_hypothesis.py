"""Hypotheses: what a team claims about a code path, validated at registration time."""

from __future__ import annotations

import datetime as _dt
import logging
import math
import os
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .errors import ConfigurationError

__all__ = ["Hypothesis", "Observation", "hypothesis"]

_log = logging.getLogger("hypoprobe")

_ID_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_MAX_TEXT = 1000
_MAX_ENDPOINT = 200
_SEGMENT_RE = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
_MAX_SEGMENTS = 50
#: Longest slow_threshold accepted (365 days): beyond it every request is "fast" anyway,
#: and 1e300 s would overflow the nanosecond threshold the recording path compares with.
_MAX_SLOW_THRESHOLD = 365 * 86_400.0
#: Segment label of requests whose segment is not on a hypothesis' allow-list.
OTHER_SEGMENT = "other"


def validate_id(hypothesis_id: object) -> str:
    """Return ``hypothesis_id`` if it is a ticket-like key, else raise ConfigurationError."""
    if not isinstance(hypothesis_id, str) or not _ID_RE.fullmatch(hypothesis_id):
        raise ConfigurationError(
            f"hypothesis id {hypothesis_id!r} is not a ticket-like key: use 1 to 64 letters, "
            "digits, '-', '_' or '.', such as 'PERF-123'"
        )
    return hypothesis_id


def validate_endpoint(name: object) -> str:
    """Return ``name`` if it can name an endpoint, else raise ConfigurationError."""
    if not isinstance(name, str) or not name.strip() or len(name) > _MAX_ENDPOINT:
        raise ConfigurationError(
            f"endpoint name {name!r} must be a non-empty string of at most {_MAX_ENDPOINT} "
            "characters, such as 'GET /campaigns/{id}'"
        )
    if name.startswith("<") and name.endswith(">") and name != "<unmatched>":
        raise ConfigurationError(f"endpoint name {name!r} is reserved by hypoprobe")
    return name


def _positive_seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{name} must be a number of seconds, got {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigurationError(f"{name} must be a positive, finite number of seconds")
    return seconds


@dataclass(frozen=True)
class Observation:
    """The anecdote that started the investigation: one request, measured once.

    Example::

        # "the subscriber query took 1.2 s of a 1.5 s request"
        seen = hypoprobe.Observation(probe_seconds=1.2, endpoint_seconds=1.5)
        assert round(seen.share, 2) == 0.8
    """

    probe_seconds: float
    endpoint_seconds: float

    def __post_init__(self) -> None:
        probe = _positive_seconds("Observation.probe_seconds", self.probe_seconds)
        endpoint = _positive_seconds("Observation.endpoint_seconds", self.endpoint_seconds)
        if probe > endpoint:
            raise ConfigurationError(
                f"Observation.probe_seconds ({probe}) cannot exceed endpoint_seconds ({endpoint})"
            )
        object.__setattr__(self, "probe_seconds", probe)
        object.__setattr__(self, "endpoint_seconds", endpoint)

    @property
    def share(self) -> float:
        """The probe's share of that one request: probe_seconds / endpoint_seconds."""
        return self.probe_seconds / self.endpoint_seconds


def _to_expiry(value: object) -> _dt.datetime | None:
    """Parse ``expires`` into the UTC instant after which the hypothesis is stale."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value
        try:
            value = _dt.date.fromisoformat(text)
        except ValueError:
            try:
                value = _dt.datetime.fromisoformat(text)
            except ValueError:
                raise ConfigurationError(
                    f"expires {text!r} is not an ISO date such as '2026-12-31'"
                ) from None
    try:
        if isinstance(value, _dt.datetime):
            aware = value if value.tzinfo else value.replace(tzinfo=_dt.timezone.utc)
            aware.astimezone(_dt.timezone.utc)  # reports and comparisons convert to UTC
            return aware
        if isinstance(value, _dt.date):
            # A date means "through that day": stale from the next midnight, UTC.
            start = _dt.datetime(value.year, value.month, value.day, tzinfo=_dt.timezone.utc)
            return start + _dt.timedelta(days=1)
    except (OverflowError, ValueError):
        raise ConfigurationError(
            f"expires {value!r} is at the edge of the calendar (its UTC instant cannot be "
            "represented); give a real date, or no expires for a hypothesis that never expires"
        ) from None
    raise ConfigurationError(f"expires must be a date, datetime or ISO string, got {value!r}")


@dataclass(frozen=True)
class Hypothesis:
    """A registered claim: "this code path causes the poor performance of this endpoint".

    Create it with :func:`hypoprobe.hypothesis`, which validates and registers it.

    Example::

        h = hypoprobe.hypothesis(
            "PERF-123",
            claim="the subscriber count query dominates GET /campaigns",
            endpoint="GET /campaigns",
            min_share=0.5,
            observed=hypoprobe.Observation(probe_seconds=1.2, endpoint_seconds=1.5),
        )
        assert h.endpoints == ("GET /campaigns",)
    """

    id: str
    claim: str
    endpoints: tuple[str, ...]
    min_share: float
    observed: Observation | None = None
    slow_threshold: float | None = None
    owner: str | None = None
    ticket: str | None = None
    expires: _dt.datetime | None = field(default=None)
    #: Allow-list of segment values kept apart ("for these users"); others count as "other".
    segments: tuple[str, ...] | None = None
    #: When set, only requests tagged with this segment count for the hypothesis.
    segment: str | None = None

    @property
    def observed_share(self) -> float | None:
        """The anecdote's share, or None when no observation was given."""
        return self.observed.share if self.observed else None

    def is_expired(self, now: _dt.datetime | None = None) -> bool:
        """True once the expiry instant has passed: its probes then pass straight through."""
        if self.expires is None:
            return False
        return (now or _dt.datetime.now(_dt.timezone.utc)) >= self.expires


def _segment_value(hid: str, value: object) -> str:
    if not isinstance(value, str) or not _SEGMENT_RE.fullmatch(value) or value == OTHER_SEGMENT:
        raise ConfigurationError(
            f"{hid}: segment {value!r} must be 1 to 64 letters, digits, '-', '_', '.' or ':' "
            f"(and not {OTHER_SEGMENT!r}, which counts everything off the list)"
        )
    return value


def _segments(
    hid: str, segments: object, segment: object
) -> tuple[tuple[str, ...] | None, str | None]:
    only = None if segment is None else _segment_value(hid, segment)
    if segments is None:
        return ((only,) if only else None), only
    if isinstance(segments, str) or not isinstance(segments, Iterable):
        raise ConfigurationError(f"{hid}: segments must be a list of segment values")
    allowed = tuple(dict.fromkeys(_segment_value(hid, s) for s in segments))
    if not allowed or len(allowed) > _MAX_SEGMENTS:
        raise ConfigurationError(f"{hid}: segments must list 1 to {_MAX_SEGMENTS} values")
    if only is not None and only not in allowed:
        raise ConfigurationError(f"{hid}: segment {only!r} is not in segments {list(allowed)}")
    return allowed, only


def _text(name: str, value: object, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise ConfigurationError(f"{name} must be a non-empty string, got {value!r}")
    if len(value) > _MAX_TEXT:
        raise ConfigurationError(f"{name} is longer than {_MAX_TEXT} characters")
    return value


def build(
    hypothesis_id: object,
    *,
    claim: object,
    endpoint: object,
    min_share: object,
    observed: object = None,
    slow_threshold: object = None,
    owner: object = None,
    ticket: object = None,
    expires: object = None,
    segments: object = None,
    segment: object = None,
) -> Hypothesis:
    """Validate every field and return the frozen Hypothesis (not registered)."""
    hid = validate_id(hypothesis_id)
    if hid.startswith("SURVEY."):  # hypoprobe._survey's candidates: never a declared one
        raise ConfigurationError(
            f"hypothesis id {hid!r}: ids starting with 'SURVEY.' are reserved for survey "
            "candidates; name it after its ticket, such as 'PERF-123'"
        )
    if isinstance(endpoint, str):
        endpoints: tuple[str, ...] = (validate_endpoint(endpoint),)
    elif isinstance(endpoint, Iterable):
        endpoints = tuple(dict.fromkeys(validate_endpoint(e) for e in endpoint))
    else:
        raise ConfigurationError(f"{hid}: endpoint must be a name or a list of names")
    if not endpoints:
        raise ConfigurationError(f"{hid}: endpoint must name at least one endpoint")
    if isinstance(min_share, bool) or not isinstance(min_share, int | float):
        raise ConfigurationError(f"{hid}: min_share must be a number in (0, 1], got {min_share!r}")
    if not (0 < float(min_share) <= 1):
        raise ConfigurationError(f"{hid}: min_share must be in (0, 1], got {min_share!r}")
    if observed is not None and not isinstance(observed, Observation):
        raise ConfigurationError(
            f"{hid}: observed must be hypoprobe.Observation(probe_seconds=..., "
            f"endpoint_seconds=...), got {observed!r}"
        )
    slow = None if slow_threshold is None else _positive_seconds("slow_threshold", slow_threshold)
    if slow is not None and slow > _MAX_SLOW_THRESHOLD:
        raise ConfigurationError(
            f"{hid}: slow_threshold must be at most {_MAX_SLOW_THRESHOLD:.0f} seconds "
            f"(365 days), got {slow_threshold!r}"
        )
    allowed, only = _segments(hid, segments, segment)
    return Hypothesis(
        id=hid,
        claim=_text(f"{hid}: claim", claim, required=True) or "",
        endpoints=endpoints,
        min_share=float(min_share),
        observed=observed,
        slow_threshold=slow,
        owner=_text(f"{hid}: owner", owner, required=False),
        ticket=_text(f"{hid}: ticket", ticket, required=False),
        expires=_to_expiry(expires),
        segments=allowed,
        segment=only,
    )


class Registry:
    """The process-wide set of hypotheses, and who to tell when it changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, Hypothesis] = {}
        self._listeners: list[Callable[[Hypothesis], None]] = []
        self._warned_expired: set[str] = set()

    def add_listener(self, listener: Callable[[Hypothesis], None]) -> None:
        self._listeners.append(listener)

    def register(self, hyp: Hypothesis) -> Hypothesis:
        with self._lock:
            existing = self._by_id.get(hyp.id)
            if existing is not None:
                if existing == hyp:
                    return existing  # a module reload registers the same definition again
                raise ConfigurationError(
                    f"hypothesis {hyp.id} is already registered with a different definition; "
                    "give the new claim a new id"
                )
            self._by_id[hyp.id] = hyp
        if hyp.is_expired():
            self.warn_expired(hyp)
        for listener in self._listeners:
            listener(hyp)
        return hyp

    def warn_expired(self, hyp: Hypothesis) -> None:
        with self._lock:  # registration and a scope's expiry check may race to warn
            if hyp.id in self._warned_expired:
                return
            self._warned_expired.add(hyp.id)
        _log.warning(
            "hypoprobe: hypothesis %s expired on %s; its probes now pass straight through. "
            "Remove them, or register the hypothesis with a later expiry.",
            hyp.id,
            hyp.expires.isoformat() if hyp.expires else "?",
        )

    def get(self, hypothesis_id: str) -> Hypothesis | None:
        return self._by_id.get(hypothesis_id)

    def all(self) -> list[Hypothesis]:
        with self._lock:
            return list(self._by_id.values())

    def clear(self) -> None:
        with self._lock:
            self._by_id.clear()
            self._warned_expired.clear()


REGISTRY = Registry()


def _after_fork_in_child() -> None:
    # Another thread may have held the lock at fork; in the child it would never be freed.
    REGISTRY._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def hypothesis(
    id: str,
    *,
    claim: str,
    endpoint: str | Iterable[str],
    min_share: float,
    observed: Observation | None = None,
    slow_threshold: float | None = None,
    owner: str | None = None,
    ticket: str | None = None,
    expires: _dt.date | _dt.datetime | str | None = None,
    segments: Iterable[str] | None = None,
    segment: str | None = None,
    **unknown: object,
) -> Hypothesis:
    """Register a hypothesis and return it.

    ``id`` is a ticket-like key (``PERF-123``); ``endpoint`` one endpoint name or several;
    ``min_share`` in (0, 1] is the share of the endpoint's latency the claim needs;
    ``observed`` is the single request that started the story; requests slower than
    ``slow_threshold`` seconds are "slow"; after ``expires`` (a date: through that day, UTC)
    the hypothesis' probes pass straight through and a warning is logged once.
    ``segments`` is an allow-list of segment values (see :func:`hypoprobe.segment`) whose
    requests are kept apart; any other value counts as ``other``, so raw user ids never
    become labels. ``segment`` restricts the hypothesis to requests of that one segment.

    Registering the same id again with the same definition is a no-op (module reloads);
    with a different definition it raises :class:`ConfigurationError`.

    Example::

        hypoprobe.hypothesis(
            "PERF-123",
            claim="the subscriber count query dominates GET /campaigns",
            endpoint="GET /campaigns",
            min_share=0.5,
            observed=hypoprobe.Observation(probe_seconds=1.2, endpoint_seconds=1.5),
            slow_threshold=1.0,
            owner="perf-team",
            ticket="https://tracker.example/PERF-123",
            expires="2027-03-31",
        )
    """
    if unknown:
        raise ConfigurationError(
            f"hypothesis() got unknown keyword(s) {', '.join(sorted(unknown))}; "
            "see help(hypoprobe.hypothesis)"
        )
    hyp = build(
        id,
        claim=claim,
        endpoint=endpoint,
        min_share=min_share,
        observed=observed,
        slow_threshold=slow_threshold,
        owner=owner,
        ticket=ticket,
        expires=expires,
        segments=segments,
        segment=segment,
    )
    return REGISTRY.register(hyp)
