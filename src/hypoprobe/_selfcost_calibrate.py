"""The self-cost calibration, run in its own interpreter by ``_selfcost`` (never imported
by a recording process: it registers hypotheses and opens endpoints of its own).

Each cost is a difference between two callables that differ only by the operation,
measured by ``_overhead.measure`` (interleaved rounds, medians). The whole set is measured
in ``PASSES`` passes a little apart, and each cost is the smallest of its passes: on a
shared machine a busy neighbour (another process on the same core's other hardware thread)
can slow *every* round of a pass about twofold, which no median removes, and such noise
only ever adds time. The result is the cost on an uncontended core. Prints one JSON line.
"""

from __future__ import annotations

import contextlib
import itertools
import sys
import time
from collections.abc import Callable

__all__ = ["main"]

#: Passes over the five differences, and the time cap of one difference in one pass.
PASSES = 3
_SECONDS = 0.15
_PAUSE = 0.2
#: Loop lengths of the calibration's calls: ~0.1 to ~10 us, in no order.
_LENGTHS = (0, 5, 40, 3, 120, 10, 1, 60, 25, 300)


def _measure() -> dict[str, float]:
    import hypoprobe

    from . import _overhead

    hypoprobe.hypothesis(
        "SELFCOST-1", claim="calibration", endpoint="selfcost /probed", min_share=0.5
    )
    endpoint = hypoprobe.endpoint

    def work(k: int) -> int:
        total = 0
        for i in range(k):
            total += i
        return total

    probed = hypoprobe.probe("SELFCOST-1", name="work")(work)

    # Calls of varied length with an argument, as real code makes them: a no-op called
    # in a tight loop keeps every lookup of the probe in one cache line and reads low.
    def varied(body: Callable[[int], object]) -> Callable[[], object]:
        ks = itertools.cycle(_LENGTHS)
        return lambda: body(next(ks))

    def plain_request(k: int) -> None:  # an endpoint no hypothesis names
        with endpoint("selfcost /plain"):
            work(k)

    def named_request(k: int) -> None:  # one hypothesis names it; its probe is not called
        with endpoint("selfcost /probed"):
            work(k)

    def request_calling_probe(k: int) -> None:
        with endpoint("selfcost /probed"):
            probed(k)

    def diff(a: object, b: object) -> float:
        m = _overhead.measure(a, b, max_seconds=_SECONDS, precision=0.05)  # type: ignore[arg-type]
        return max(0.0, m.added_ns)

    def one_pass() -> dict[str, float]:
        call_outside = diff(varied(probed), varied(work))
        with endpoint("selfcost /probed"):  # calls inside one long request: per call
            call_inside = diff(varied(probed), varied(work))
        request = diff(varied(plain_request), varied(work))
        hypothesis = diff(varied(named_request), varied(plain_request))
        # a request calling the probe once = its call + its per-request rows at the end
        probe_row = max(
            0.0, diff(varied(request_calling_probe), varied(named_request)) - call_inside
        )
        return {
            "call_ns": call_inside,
            "call_outside_ns": call_outside,
            "request_ns": request,
            "hypothesis_ns": hypothesis,
            "probe_row_ns": probe_row,
        }

    passes = []
    for i in range(PASSES):
        if i:
            time.sleep(_PAUSE)  # a neighbour's burst may be over by the next pass
        passes.append(one_pass())
    return {key: min(p[key] for p in passes) for key in passes[0]}


def main() -> None:
    import json
    import os

    # The lowest CPU priority: the application's own processes come first. Rounds the
    # scheduler interrupts are left out of the medians, so the figures do not change.
    if hasattr(os, "nice"):
        with contextlib.suppress(OSError):
            os.nice(19)
    sys.stdout.write(json.dumps(_measure()) + "\n")


if __name__ == "__main__":  # pragma: no cover
    main()
