"""Instructions per request of each middleware budget's cases, counted by callgrind.

The timed budgets (bench_budgets.py) carry the noise of a shared machine; an instruction
count does not: valgrind's callgrind repeats exactly whatever the machine does. Each case
(bare app, hypoprobe's integration, the prometheus_client histogram middleware) runs once
with ``SMALL`` and once with ``LARGE`` requests, each in its own interpreter under
callgrind; the difference over ``LARGE - SMALL`` requests is the cost of one request with
start-up, imports and warm-up cancelled out. Printed: instructions per request, those added
over the bare app, and hypoprobe's added over the reference's (the budget's ratio, counted).

Run (needs ``valgrind``; a few minutes per framework)::

    .venv/bin/python -m benchmarks.count_instructions            # every framework
    .venv/bin/python -m benchmarks.count_instructions starlette  # one

Heap layout moves a count by up to ~1,000 instructions between otherwise equal runs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from typing import Any

#: Requests of the short and the long run; their difference is what is counted.
SMALL, LARGE = 50, 250
CASES = ("bare", "hypoprobe", "prometheus")
FRAMEWORKS = ("wsgi", "asgi", "flask", "django", "starlette")
_TOTAL = re.compile(r"Collected : (\d+)")


def _serve(framework: str, case: str, requests: int) -> Callable[[], None]:
    from . import bench_budgets  # noqa: F401  (the budgets' hypotheses, as in a bench run)
    from . import bench_middleware as mw

    if framework in ("wsgi", "asgi"):
        from hypoprobe.integrations.asgi import HypoprobeASGIMiddleware
        from hypoprobe.integrations.wsgi import HypoprobeMiddleware

        if framework == "wsgi":
            wsgi: dict[str, Any] = {
                "bare": mw._wsgi_app,
                "hypoprobe": HypoprobeMiddleware(mw._wsgi_app, name=lambda e: "GET /bench/{id}"),
                "prometheus": mw._prometheus_wsgi(mw._wsgi_app, mw._bench_route),
            }
            return mw._serve_wsgi(wsgi[case], "/bench/7", requests)
        asgi: dict[str, Any] = {
            "bare": mw._asgi_app,
            "hypoprobe": HypoprobeASGIMiddleware(mw._asgi_app, name=lambda s: "GET /bench/{id}"),
            "prometheus": mw._prometheus_asgi(mw._asgi_app, mw._bench_route),
        }
        return mw._serve_asgi(asgi[case], "/bench/7", requests)
    if framework == "flask":
        return mw._serve_wsgi(mw._flask_app(case), "/flask/7", requests)
    if framework == "starlette":
        return mw._serve_asgi(mw._starlette_app(case), "/starlette/7", requests)
    from django.test import override_settings  # type: ignore[import-untyped]

    handler, urls = mw._django_handler(case)
    serve = mw._serve_wsgi(handler, "/django/7/", requests)

    def with_urls() -> None:
        with override_settings(ROOT_URLCONF=urls):
            serve()

    return with_urls


def _count(framework: str, case: str, requests: int) -> int:
    """Instructions of a whole interpreter serving ``requests`` requests of one case."""
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        "-m",
        "benchmarks.count_instructions",
        "--serve",
        framework,
        case,
        str(requests),
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    found = _TOTAL.search(done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction total from callgrind: {done.stderr[-500:]}")
    return int(found.group(1))


def per_request(framework: str) -> dict[str, int]:
    """Instructions of one request of each case (long run minus short run)."""
    return {
        case: (_count(framework, case, LARGE) - _count(framework, case, SMALL)) // (LARGE - SMALL)
        for case in CASES
    }


def main(argv: list[str]) -> int:
    if argv[:1] == ["--serve"]:
        framework, case, requests = argv[1], argv[2], int(argv[3])
        _serve(framework, case, requests)()
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    chosen = argv or list(FRAMEWORKS)
    unknown = sorted(set(chosen) - set(FRAMEWORKS))
    if unknown:
        print(f"unknown framework {unknown}; choose from {FRAMEWORKS}", file=sys.stderr)
        return 2
    print(f"{'':10s} {'bare':>9s} {'+hypoprobe':>11s} {'+prometheus':>12s} {'ratio':>6s}")
    for framework in chosen:
        counts = per_request(framework)
        bare = counts["bare"]
        ours, theirs = counts["hypoprobe"] - bare, counts["prometheus"] - bare
        ratio = ours / theirs if theirs > 0 else float("inf")
        print(f"{framework:10s} {bare:9,d} {ours:11,d} {theirs:12,d} {ratio:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
