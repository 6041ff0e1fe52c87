"""A seeded load generator for the campaigns app: a realistic mix, bounded in requests and time.

It reads the app's accounts once (``GET /api/accounts``, not counted), then sends requests
back to back (no think time) from one client: mostly campaign pages, some list pages and
campaign reports, and rarely (1 in 200) a CSV export, for accounts picked by plan (40%
free, 56% pro, 4% enterprise). The same seed against the same data sends the same
requests in the same order, so two runs (before and after a fix) see the same traffic.

Example::

    python -m hypoprobe.demo.loadgen http://127.0.0.1:8000 --requests 500 --seed 1

    from hypoprobe.demo import loadgen
    result = loadgen.run("http://127.0.0.1:8000", requests=500, seed=1, max_seconds=60)
    print(result.requests, result.errors, result.stopped_by)
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.client import HTTPConnection
from typing import Any

__all__ = ["ENDPOINT_MIX", "PLAN_MIX", "LoadResult", "main", "plan_requests", "run"]

#: Which page a request asks for, and how often (weights).
ENDPOINT_MIX: Mapping[str, float] = {
    "campaigns": 0.60,
    "lists": 0.15,
    "campaign": 0.245,
    "export": 0.005,
}
#: Which kind of account it is for (weights): big accounts are rare.
PLAN_MIX: Mapping[str, float] = {"free": 0.40, "pro": 0.56, "enterprise": 0.04}

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class LoadResult:
    """What a run did: requests sent, failures, wall time, and why it stopped.

    Example::

        result = run("http://127.0.0.1:8000", requests=100, max_seconds=5)
        print(f"{result.requests} in {result.seconds:.1f} s, stopped by {result.stopped_by}")
    """

    requests: int
    errors: int
    seconds: float
    stopped_by: str  # "requests" or "time"
    by_page: Mapping[str, int] = field(default_factory=dict)


def _pick(rng: random.Random, weights: Mapping[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def plan_requests(
    accounts: Sequence[Mapping[str, Any]], requests: int, seed: int
) -> list[tuple[str, str]]:
    """The (page, path) of each request a run with this seed sends, in order.

    Example::

        plan_requests(accounts, 2, seed=1)
        # [('campaigns', '/accounts/17/campaigns'), ('campaign', '/campaigns/412')]
    """
    rng = random.Random(seed)
    by_plan: dict[str, list[Mapping[str, Any]]] = {}
    for account in accounts:
        by_plan.setdefault(str(account["plan"]), []).append(account)
    mix = {plan: w for plan, w in PLAN_MIX.items() if by_plan.get(plan)}
    if not mix:
        raise ValueError("the app has no accounts of a known plan (free, pro, enterprise)")
    out: list[tuple[str, str]] = []
    for _ in range(requests):
        page = _pick(rng, ENDPOINT_MIX)
        account = rng.choice(by_plan[_pick(rng, mix)])
        aid = account["id"]
        if page == "campaign" and account["campaigns"]:
            path = f"/campaigns/{rng.choice(account['campaigns'])}"
        elif page == "export" and account["lists"]:
            path = f"/lists/{rng.choice(account['lists'])}/export"
        elif page == "lists":
            path = f"/accounts/{aid}/lists"
        else:
            page, path = "campaigns", f"/accounts/{aid}/campaigns"
        out.append((page, path))
    return out


def _get(conn: HTTPConnection, path: str) -> tuple[int, bytes]:
    conn.request("GET", path, headers={"Connection": "close"})
    response = conn.getresponse()
    return response.status, response.read()


def run(
    base_url: str,
    *,
    requests: int,
    seed: int = 1,
    max_seconds: float | None = None,
    progress: Progress | None = None,
    timeout: float = 30.0,
) -> LoadResult:
    """Send up to ``requests`` requests to ``base_url``, stopping after ``max_seconds``.

    A request is not started after ``max_seconds``; one in flight finishes. Failed
    requests (HTTP >= 400, connection errors) count in ``errors`` and do not stop the run.

    Example::

        run("http://127.0.0.1:8000", requests=500, seed=2, progress=lambda d, t: print(d, t))
    """
    if requests < 0:
        raise ValueError("requests must be >= 0")
    url = urllib.parse.urlsplit(base_url)
    if url.scheme != "http" or not url.hostname:
        raise ValueError(f"{base_url!r} is not an http://host[:port] URL")
    prefix = url.path.rstrip("/")

    def connect() -> HTTPConnection:
        return HTTPConnection(url.hostname or "", url.port or 80, timeout=timeout)

    start = time.monotonic()
    deadline = None if max_seconds is None else start + max_seconds
    status, body = _get(connect(), f"{prefix}/api/accounts")
    if status != 200:
        raise RuntimeError(f"GET {prefix}/api/accounts answered {status}: is this the app?")
    plan = plan_requests(json.loads(body), requests, seed)
    errors = 0
    done = 0
    by_page: Counter[str] = Counter()
    stopped_by = "requests"
    for page, path in plan:
        if deadline is not None and time.monotonic() >= deadline:
            stopped_by = "time"
            break
        conn = connect()
        try:
            status, _ = _get(conn, prefix + path)
            errors += status >= 400
        except OSError:
            errors += 1
        finally:
            conn.close()
        done += 1
        by_page[page] += 1
        if progress is not None:
            progress(done, requests)
    return LoadResult(done, errors, time.monotonic() - start, stopped_by, dict(by_page))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hypoprobe.demo.loadgen URL --requests N --seed S [--max-seconds T]``."""
    parser = argparse.ArgumentParser(
        prog="python -m hypoprobe.demo.loadgen",
        description="Drive the campaigns demo app with a seeded, bounded, realistic mix.",
    )
    parser.add_argument("url", help="base URL of the app, e.g. http://127.0.0.1:8000")
    parser.add_argument("--requests", type=int, default=1000, help="how many (default 1000)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the mix (default 1)")
    parser.add_argument(
        "--max-seconds", type=float, default=None, help="stop after this much wall time"
    )
    args = parser.parse_args(argv)
    try:
        result = run(args.url, requests=args.requests, seed=args.seed, max_seconds=args.max_seconds)
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"loadgen: {exc}", file=sys.stderr)
        return 2
    pages = ", ".join(f"{k} {v}" for k, v in sorted(result.by_page.items()))
    print(
        f"{result.requests} requests ({pages}) in {result.seconds:.1f} s, "
        f"{result.errors} errors, stopped by {result.stopped_by}"
    )
    return 1 if result.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
