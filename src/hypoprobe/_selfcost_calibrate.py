"""The self-cost calibration, run in its own interpreter by ``_selfcost`` (never imported
by a recording process: it registers hypotheses and opens endpoints of its own).

Each cost is a difference between two callables that differ only by the operation,
measured by ``_overhead.measure`` (interleaved rounds, medians). Prints one JSON line.
"""

from __future__ import annotations

import sys

__all__ = ["main"]

#: Time cap per measured difference, in seconds (five differences).
_SECONDS = 0.4


def _measure() -> dict[str, float]:
    import hypoprobe

    from . import _overhead

    hypoprobe.hypothesis(
        "SELFCOST-1", claim="calibration", endpoint="selfcost /probed", min_share=0.5
    )
    endpoint = hypoprobe.endpoint

    def noop() -> None:
        return None

    probed = hypoprobe.probe("SELFCOST-1", name="noop")(noop)

    def plain_request() -> None:  # an endpoint no hypothesis names
        with endpoint("selfcost /plain"):
            pass

    def named_request() -> None:  # an endpoint one hypothesis names, its probe not called
        with endpoint("selfcost /probed"):
            pass

    def request_calling_bare() -> None:
        with endpoint("selfcost /probed"):
            noop()

    def request_calling_probe() -> None:
        with endpoint("selfcost /probed"):
            probed()

    def nothing() -> None:
        return None

    def diff(a: object, b: object) -> float:
        m = _overhead.measure(a, b, max_seconds=_SECONDS, precision=0.05)  # type: ignore[arg-type]
        return max(0.0, m.added_ns)

    call_outside = diff(probed, noop)
    with endpoint("selfcost /probed"):  # calls inside one long request: the per-call part
        call_inside = diff(probed, noop)
    request = diff(plain_request, nothing)
    hypothesis = diff(named_request, plain_request)
    # a request calling the probe once = its call + its per-request rows at the end
    probe_row = max(0.0, diff(request_calling_probe, request_calling_bare) - call_inside)
    return {
        "call_ns": call_inside,
        "call_outside_ns": call_outside,
        "request_ns": request,
        "hypothesis_ns": hypothesis,
        "probe_row_ns": probe_row,
    }


def main() -> None:
    import json

    sys.stdout.write(json.dumps(_measure()) + "\n")


if __name__ == "__main__":  # pragma: no cover
    main()
