"""A request's end compiled per plan: the same recording as ``_scope._finish``, in straight
lines with every series offset a constant.

``_scope._finish`` walks the rows its plan prepared; per request and hypothesis that walk
costs a tuple unpacking, loop bookkeeping and a branch per site even when the request
called no probe. A plan is built once and read by thousands of requests, so when it is
built it also gets its own end-of-request function, generated as Python source with the
plan's offsets, thresholds and slowest-request lists written in (the way ``dataclasses``
and ``namedtuple`` generate ``__init__``). What it leaves to ``_finish``, the reference
implementation, before it has written anything: a request with a sampled span (exemplars,
span annotation), a plan that keeps segments apart, a thread whose shard does not cover
the plan yet, an outcome (status, exception) first seen now, a request past the
accumulator's limit or timed by a clock that went backwards. tests/test_request_end.py
checks that both record the same.

Example::

    end = compile_end(plan)  # at plan build time, under the plan lock
    end(scope, elapsed_ns)  # at the request's end
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from typing import Any

from . import _buckets, _plan
from . import _scope as S
from ._storage import STORAGE, TLS

__all__: list[str] = []

#: A request's end: the scope and its elapsed nanoseconds.
End = Callable[[Any, int], None]

#: Plans with more accumulator slots than this keep the generic end: their generated
#: source would be long, and such plans (a wide survey) are not the per-request hot path.
MAX_COMPILED_SITES = 64

#: Compiled code by (source, file name): compiling costs about 1 ms, executing the code
#: object 60 us less; a plan rebuilt with the same offsets reuses it. Bounded.
_COMPILED: dict[tuple[str, str], Any] = {}
_MAX_COMPILED = 4096


class _Source:
    """Lines of Python source with an indentation level."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 1

    def add(self, *lines: str) -> None:
        self.lines.extend("    " * self.depth + line for line in lines)


def _duration_bucket(src: _Source, value: str, into: str) -> None:
    # _buckets.duration_index(value), inlined: a bisect over the duration bounds costs as
    # much as the rest of a request's end.
    src.add(
        f"if {value} < {_buckets.FAST_LIMIT}:",
        f"    {into} = FAST[{value}]",
        "else:",
        f"    shift = {value}.bit_length() - 9",
        f"    {into} = PREFIX[shift][{value} >> shift]",
        f"    if {value} > CEILINGS[{into}]:",
        f"        {into} += 1",
    )


def _moments(src: _Source, m: int, f: int) -> None:
    # The moments every request of the hypothesis adds: requests, endpoint time, its square.
    src.add(f"ints[{m}] += 1", f"ints[{m + 3}] += elapsed", f"floats[{f + 1}] += e2")


def _split_moments(src: _Source, condition: str, row: _plan.Row) -> None:
    # The moments of the slow requests' series if ``condition``, else the others'.
    _, m0, f0, m1, f1, _, _, _, _ = row
    src.add(f"if {condition}:")
    src.depth += 1
    _moments(src, m1, f1)
    src.depth -= 1
    src.add("else:")
    src.depth += 1
    _moments(src, m0, f0)
    src.depth -= 1


def _idle_row(src: _Source, row: _plan.Row, i: int) -> None:
    slow_ns, m0, f0, _, _, _, _, _, _ = row
    if slow_ns >= _plan.TIME_LIMIT:  # never slow: a request that long never reaches here
        _moments(src, m0, f0)
    else:
        _split_moments(src, f"elapsed > {slow_ns}", row)
    src.add(
        f"if slowest and elapsed > top{i}.latency_floor:",
        f"    offer(top{i}, hid{i}, endpoint_name, elapsed, 0, 0, 0)",
    )


def _called_row(src: _Source, row: _plan.Row, i: int) -> None:
    slow_ns, m0, f0, m1, f1, sites, _, _, _ = row
    never = slow_ns >= _plan.TIME_LIMIT
    if never:
        src.add("slow = False")
        _moments(src, m0, f0)
    else:
        src.add(f"slow = elapsed > {slow_ns}")
        _split_moments(src, "slow", row)
    src.add("total = calls = 0")
    d, s, c = _buckets.DURATION.sum_slot, _buckets.SHARE.sum_slot, _buckets.CALLS.sum_slot
    for pos, (r0, r1), share_off, calls_off in sites:
        src.add(
            f"slot = acc[{pos}]",
            "if slot:",
            # The slot's packing (_plan.CALLS_SHIFT), decoded as _scope._finish does.
            f"    p = slot & {_plan.TIME_MASK}",
            f"    n = slot >> {_plan.CALLS_SHIFT}",
            "    total += p",
            "    calls += n",
            f"    req = {r1} if slow else {r0}",
        )
        src.depth += 1
        _duration_bucket(src, "p", "b")
        src.add(
            "ints[req + b] += 1",
            f"ints[req + {d}] += p",
            "share = p * 1000000000 // elapsed if elapsed > 0 else 0",
            f"ints[{share_off} + bisect_left(SHARE, share)] += 1",
            f"ints[{share_off + s}] += share",
            f"ints[{calls_off} + bisect_left(CALLS, n)] += 1",
            f"ints[{calls_off + c}] += n",
        )
        src.depth -= 1
    src.add(
        "if calls:",
        f"    m = {m1} if slow else {m0}",
        f"    f = {f1} if slow else {f0}",
        "    ints[m + 1] += 1",
        "    ints[m + 2] += total",
        "    ps = total / 1000000000",
        "    floats[f] += ps * ps",
        "    floats[f + 2] += ps * e",
        "    if slowest and (",
        f"        (total / elapsed if elapsed > 0 else 0.0) > top{i}.share_floor",
        f"        or elapsed > top{i}.latency_floor",
        "    ):",
        f"        offer(top{i}, hid{i}, endpoint_name, elapsed, total, calls, 0)",
        f"elif slowest and elapsed > top{i}.latency_floor:",
        f"    offer(top{i}, hid{i}, endpoint_name, elapsed, 0, 0, 0)",
    )


def compile_end(plan: _plan.Plan) -> End:
    """The end-of-request function of ``plan``; ``_scope._finish`` where none is generated.

    Called when the plan is built (under the plan lock): every series the plan names
    exists, so the current slot counts cover them.
    """
    generic: End = S._finish
    if plan.segment_rows or plan.width > MAX_COMPILED_SITES:
        return generic
    rows = plan.plain_rows
    endpoint_name = _plan.ENDPOINT_NAMES[plan.endpoint_index]
    namespace: dict[str, Any] = {
        "S": S,
        "TLS": TLS,
        "generic": generic,
        "otel_context": S._otel_context,
        "offer": S._offer_slowest,
        "notify": S.notify,
        "bisect_left": bisect_left,
        "FAST": _buckets.DURATION_FAST,
        "PREFIX": _buckets.DURATION_PREFIX,
        "CEILINGS": _buckets.DURATION_CEILINGS,
        "SHARE": _buckets.SHARE.bounds,
        "CALLS": _buckets.CALLS.bounds,
        "outcomes": plan.outcomes,
        "endpoint_name": endpoint_name,
    }
    for i, row in enumerate(rows):
        namespace[f"top{i}"] = row[6]
        namespace[f"hid{i}"] = row[7]
    src = _Source()
    # Everything that sends the request to the generic end is decided before any write.
    src.add(
        f"if not 0 <= elapsed < {_plan.TIME_LIMIT} or (S.TRACE and otel_context()):",
        "    return generic(scope, elapsed)",
        "try:",
        "    ints, floats = TLS.shard",
        "except AttributeError:",
        "    return generic(scope, elapsed)",
        "exception = scope.exception",
        "off = outcomes.get((scope.status, exception) if exception else scope.status)",
        "size = len(ints)",
        f"if off is None or size < {STORAGE.int_slots} or off >= size"
        f" or len(floats) < {STORAGE.float_slots}:",
        "    return generic(scope, elapsed)",
        "ints[off] += 1",
    )
    _duration_bucket(src, "elapsed", "b")
    src.add(
        f"ints[{plan.endpoint_offset} + b] += 1",
        f"ints[{plan.endpoint_offset + _buckets.DURATION.sum_slot}] += elapsed",
    )
    if rows:
        src.add("e = elapsed / 1000000000", "e2 = e * e", "slowest = S.SLOWEST")
        if plan.width:  # a request that called no probe skips every site
            src.add("if any(scope.acc):")
            src.depth += 1
            src.add("acc = scope.acc")
            for i, row in enumerate(rows):
                _called_row(src, row, i)
            src.depth -= 1
            src.add("else:")
            src.depth += 1
        for i, row in enumerate(rows):
            _idle_row(src, row, i)
        src.depth = 1
    src.add("if S.OBSERVERS:", "    notify(S.OBSERVERS, scope, elapsed, None)")
    text = "\n".join(["def end(scope, elapsed):", *src.lines])
    filename = f"<hypoprobe request end: {endpoint_name!r}>"
    code = _COMPILED.get((text, filename))
    if code is None:  # plans are rebuilt after every registration, mostly the same text
        if len(_COMPILED) >= _MAX_COMPILED:
            _COMPILED.clear()
        code = _COMPILED[(text, filename)] = compile(text, filename, "exec")
    exec(code, namespace)
    made: End = namespace["end"]
    return made


_plan.COMPILE_END = compile_end
