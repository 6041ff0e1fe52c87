"""hypoprobe's own cost in production: an estimate from counts already kept, never timed live.

The hot path is not touched. At collection time the snapshot's counts — requests per
endpoint, probe calls per endpoint, hypothesis rows and probe rows processed at request
end — are multiplied by per-operation costs calibrated once per process::

    self_seconds[endpoint] = requests * request_ns + calls * call_ns
                           + hypothesis_requests * hypothesis_ns
                           + probe_requests * probe_row_ns
    self_seconds["<none>"] = calls outside any scope * call_outside_ns

The calibration measures each operation against the same code without it (interleaved
rounds, medians: ``_overhead.measure``) in a **separate Python process**, started in a
background thread at the first collection (whose figure is then still missing), so its
probes, endpoints and hypotheses never reach this process' storage, and this process'
configuration file and multi-process directory are not touched (of the ``HYPOPROBE_*``
settings only those that change what recording costs are passed on, so exemplars and
slowest requests cost there what they cost here).
``HYPOPROBE_SELF_COST=off`` turns the estimate off (no calibration, no figure).

It is an estimate: it leaves out the application's own cache misses caused by the probe
and the web integrations' work on the request (naming the route, parsing the status); its
accuracy against a measured ground truth is in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

from . import _faults
from ._metrics import NO_ENDPOINT
from .snapshot import Snapshot

__all__ = ["ENV_VAR", "Costs", "costs", "estimate"]

ENV_VAR = "HYPOPROBE_SELF_COST"
#: The only HYPOPROBE_* settings the calibration process gets: those that change what a
#: probe or a request costs. Not the configuration file, the multi-process directory, or
#: ``hypoprobe run``'s (its process must not load probes, share storage or serve metrics).
_PASSED_ON = frozenset(
    (
        "HYPOPROBE_DISABLED",
        "HYPOPROBE_MAX_SERIES",
        "HYPOPROBE_BUCKETS_PER_OCTAVE",
        "HYPOPROBE_EXEMPLARS",
        "HYPOPROBE_SLOWEST_REQUESTS",
        "HYPOPROBE_SLOWEST_WINDOW",
        "HYPOPROBE_ANNOTATE_SPANS",
    )
)
_TIMEOUT_SECONDS = 60.0
_log = logging.getLogger("hypoprobe")


@dataclass(frozen=True)
class Costs:
    """Calibrated costs of hypoprobe's operations, in ns per operation.

    Example::

        c = Costs(call_ns=120, call_outside_ns=90, request_ns=900, hypothesis_ns=250,
                  probe_row_ns=400)
    """

    #: One probe call inside an endpoint scope (timing, histogram, request accumulator).
    call_ns: float
    #: One probe call outside any endpoint scope.
    call_outside_ns: float
    #: One request: the endpoint scope's enter and exit, its histogram and outcome.
    request_ns: float
    #: One hypothesis' moments at the end of one request of an endpoint it names.
    hypothesis_ns: float
    #: One probe's per-request histograms at the end of a request that called it.
    probe_row_ns: float

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Costs:
        values = {}
        for f in fields(cls):
            v = float(data[f.name])  # type: ignore[arg-type]
            if not v >= 0 or v > 1e9:
                raise ValueError(f"{f.name}={v!r} is not a cost in ns")
            values[f.name] = v
        return cls(**values)


_lock = threading.Lock()
#: The calibration: None until measured; False when off or failed (no estimate).
_COSTS: Costs | bool | None = None
#: Set once the calibration has ended (measured, off or failed) in this process.
_DONE = threading.Event()
_started = False


def _calibration_env() -> dict[str, str]:
    return {
        k: v for k, v in os.environ.items() if not k.startswith("HYPOPROBE_") or k in _PASSED_ON
    }


def _interpreter() -> str:
    """A Python interpreter to run the calibration with.

    Under an embedding server (uWSGI, mod_wsgi) ``sys.executable`` is the server's binary,
    which must not be started with Python's arguments.
    """
    for candidate in (sys.executable, getattr(sys, "_base_executable", "")):
        if candidate and os.path.basename(candidate).lower().startswith(("python", "pypy")):
            return candidate
    raise RuntimeError(
        f"no Python interpreter to calibrate with (sys.executable is {sys.executable!r}); "
        f"set {ENV_VAR} to a calibration measured elsewhere, or to off"
    )


def _calibrate_in_child() -> Costs:
    """Run ``_selfcost_calibrate`` in a fresh interpreter; its last stdout line is the JSON."""
    import subprocess  # here: `import hypoprobe` should not pay for it

    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = (
        f"import sys; sys.path.insert(0, {package_parent!r}); "
        "from hypoprobe._selfcost_calibrate import main; main()"
    )
    done = subprocess.run(
        [_interpreter(), "-I", "-c", code],
        env=_calibration_env(),
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_SECONDS,
        check=False,
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"exit status {done.returncode}: {tail[0]}")
    return Costs.from_dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _configured() -> Costs | bool | None:
    """The calibration the environment gives (a figure, or off); None: measure it."""
    setting = os.environ.get(ENV_VAR, "").strip()
    if setting.lower() in ("off", "0", "false", "no"):
        return False
    if setting:  # figures of an earlier calibration, as its JSON
        try:
            return Costs.from_dict(json.loads(setting))
        except (ValueError, TypeError, KeyError) as exc:
            _log.warning("hypoprobe: %s is not a calibration (%s); calibrating", ENV_VAR, exc)
    return None


def _run_calibration() -> None:
    global _COSTS
    try:
        result: Costs | bool = _calibrate_in_child()
    except Exception as exc:
        _faults.record("self_cost_calibration")
        _log.warning("hypoprobe: could not calibrate its own cost, left out: %s", exc)
        result = False
    _COSTS = result
    _DONE.set()


def costs(wait: float | None = 0.0) -> Costs | None:
    """This process' calibration (None while it runs, when off, or when it failed).

    The first call starts the calibration in a background thread (one to two seconds, in
    a child interpreter at the lowest CPU priority, under half a second of CPU) and
    returns at once, so no collection waits for it; ``wait`` seconds (None: until done)
    wait for it instead. A failed calibration is counted
    (``internal_errors{kind="self_cost_calibration"}``), logged, and not retried: the
    figure is left out rather than guessed.
    """
    global _COSTS, _started
    if _COSTS is None and not _started:
        with _lock:
            if _COSTS is None and not _started:
                given = _configured()
                if given is not None:
                    _COSTS = given
                    _DONE.set()
                else:
                    _started = True
                    threading.Thread(
                        target=_run_calibration, name="hypoprobe-self-cost", daemon=True
                    ).start()
    if _COSTS is None and wait != 0.0:
        _DONE.wait(wait)
    found = _COSTS
    return found if isinstance(found, Costs) else None


def set_costs(value: Costs | None) -> None:
    """Replace the calibration (tests: a fake one; None: calibrate again when next needed)."""
    global _COSTS, _started, _DONE
    with _lock:
        _COSTS = value
        _started = False
        _DONE = threading.Event()
        if value is not None:
            _DONE.set()


def _after_fork_in_child() -> None:
    # A calibration running in the parent does not exist here: start over if it had not
    # finished (a finished one is inherited: same machine, same code).
    global _lock, _started, _DONE
    _lock = threading.Lock()
    if _COSTS is None:
        _started = False
        _DONE = threading.Event()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def estimate(
    snap: Snapshot, calibration: Costs | None = None, *, calibrate: bool = True
) -> dict[str, float]:
    """Estimated seconds hypoprobe spent, per endpoint, for the counts in ``snap``.

    Without ``calibration``, this process' own is used (its measurement started, if
    ``calibrate``, and not waited for); with none yet, the result is empty.

    Example::

        fake = Costs(call_ns=100, call_outside_ns=80, request_ns=1000, hypothesis_ns=200,
                     probe_row_ns=300)
        per_endpoint = estimate(snapshot, fake)
    """
    c = calibration if calibration is not None else (costs() if calibrate else None)
    if c is None:
        return {}
    ns: dict[str, float] = {}

    def add(endpoint: str, value: float) -> None:
        if value:
            ns[endpoint] = ns.get(endpoint, 0.0) + value

    for e in snap.endpoints:
        add(e.endpoint, e.duration.count * c.request_ns)
    for p in snap.probes:
        per_call = c.call_outside_ns if p.endpoint == NO_ENDPOINT else c.call_ns
        add(p.endpoint, p.duration.count * per_call)
    for mo in snap.moments:
        add(mo.endpoint, mo.requests * c.hypothesis_ns)
    for r in snap.requests:
        # The first calls bucket is exactly 0 calls: the rest are requests that called it.
        add(r.endpoint, (r.calls.count - r.calls.counts[0]) * c.probe_row_ns)
    return {k: v / 1e9 for k, v in sorted(ns.items())}


def as_json(c: Costs) -> str:
    """The calibration as ``HYPOPROBE_SELF_COST`` accepts it."""
    return json.dumps(asdict(c))
