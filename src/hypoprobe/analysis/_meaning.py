"""The one plain sentence that says what a verdict means, for people who read no tables."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._ratio import MIN_REQUESTS
from ._text import DASH, MISSING, count, pct, pct_claim, pct_range, seconds

__all__ = ["meaning", "subject"]

#: Calls per request at which a probe reads as an N+1 pattern.
MANY_CALLS = 5.0
#: More requests than this many times those seen would not settle a verdict in practice.
UNREALISTIC = 100


def subject(probes: tuple[str, ...] | list[str], hypothesis: str) -> str:
    """What the sentence talks about: the probe's name, or the hypothesis' probes."""
    if len(probes) == 1:
        return probes[0]
    if probes:
        return f"the {len(probes)} probes of {hypothesis}"
    return f"the code probed for {hypothesis}"


def _more(n: int) -> str:
    return f"{count(n)} more request" + ("" if n == 1 else "s")


def meaning(v: Mapping[str, Any]) -> str:
    """Say the verdict in words, e.g. ``DISPROVED: q is 7.1% (...) of GET /x latency...``."""
    who = subject(tuple(v["probes"]), v["hypothesis"])
    # "the 2 probes of X are", "q is": the verb agrees with the subject.
    be = "are" if len(v["probes"]) > 1 else "is"
    verdict, endpoint, n = v["verdict"], v["endpoint"], v["requests"]
    claim = pct_claim(v["min_share"])
    if verdict == "UNMEASURED":
        return f"{verdict}: {v['reason']}."
    if n == 0:
        return (
            f"{verdict}: no requests of {endpoint} were recorded for {v['hypothesis']} yet; "
            f"the claim needs {claim}."
        )
    if v.get("segment"):
        endpoint = f"{endpoint} (segment {v['segment']})"
    share = pct(v["aggregate_share"])
    interval = pct_range(v["ci_low"], v["ci_high"])
    requests = "request" if n == 1 else "requests"
    if n < MIN_REQUESTS:
        head = (
            f"{verdict}: only {count(n)} {requests} so far, at least {MIN_REQUESTS} are needed "
            f"to judge; {who} {be} {share} of {endpoint} latency and the claim needs {claim}"
        )
        if v["requests_needed"]:
            head += f"; about {_more(v['requests_needed'])} would settle it"
    elif verdict == "INCONCLUSIVE":
        more = v["requests_needed"]
        settle = (
            f"about {_more(more)} would settle it"
            if more and more <= UNREALISTIC * n
            else "the share equals the claim within its interval, and no realistic number "
            "of requests would settle it: the claim's threshold is the share itself"
        )
        head = (
            f"{verdict}: {who} {be} {share} ({interval}) of {endpoint} latency across "
            f"{count(n)} {requests}, too close to the {claim} the claim needs; {settle}"
        )
    else:
        head = (
            f"{verdict}: {who} {be} {share} ({interval}) of {endpoint} latency across "
            f"{count(n)} {requests}; the claim needed {claim}"
        )
    parts = [head + "."]
    if v["anecdote_percentile"] is not None:
        story = (
            f"The {seconds(v['anecdote_probe_seconds'])} of "
            f"{seconds(v['anecdote_endpoint_seconds'])} observation"
        )
        fraction = v["anecdote_percentile"]
        if fraction <= 0:
            parts.append(f"No request had a share as high as the {story[4:]}.")
        else:
            parts.append(f"{story} was in the top {pct(fraction)} of requests.")
    if v["slow_share"] is not None and v["slow_requests"]:
        slow = v["slow_requests"]
        among = "In the 1 slow request" if slow == 1 else f"Among the {count(slow)} slow requests"
        parts.append(
            f"{among} (over {seconds(v['slow_threshold'])}) its share is {pct(v['slow_share'])}."
        )
    elif v["slow_threshold"] is not None and v["slow_requests"] == 0:
        parts.append(f"No request was slower than {seconds(v['slow_threshold'])}.")
    segments = [seg for seg in v.get("segments", ()) if seg.requests]
    if len(segments) > 1:
        parts.append(
            "By segment: "
            + "; ".join(
                f"{seg.segment} {pct(seg.aggregate_share)}"
                + (f" ({pct_range(seg.ci_low, seg.ci_high)})" if seg.ci_low is not None else "")
                + f" of {count(seg.requests)}"
                for seg in segments
            )
            + "."
        )
    calls = v["calls_per_request_mean"]
    if calls is not None and calls >= MANY_CALLS:
        bucket = v.get("quantile_buckets", {}).get("calls_per_request_p95")
        p95 = (
            f"{bucket[0]:g}{DASH}{bucket[1]:g}"
            if bucket
            else MISSING
            if v["calls_per_request_p95"] is None
            else f"{v['calls_per_request_p95']:g}"
        )
        parts.append(
            f"It runs {calls:.1f} times per request on average (p95 {p95}): an N+1 pattern."
        )
    return " ".join(parts)
