"""Sampling and caps, with a fake clock and a fake DB-API connection whose statements take
exactly the time they are told to. Writes result.json."""

from __future__ import annotations

import json
import random
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

import hypoprobe
from hypoprobe import _survey
from hypoprobe.analysis._survey import survey_of

NOW = [10**12]


def clock() -> int:
    return NOW[0]


class Cursor:
    def execute(self, statement: str, cost_ns: int = 0) -> Cursor:
        NOW[0] += cost_ns
        return self

    def fetchall(self) -> list[Any]:
        return []


class Connection:
    def cursor(self) -> Cursor:
        return Cursor()

    def execute(self, statement: str, cost_ns: int = 0) -> Cursor:
        return Cursor().execute(statement, cost_ns)


out = Path(sys.argv[1])
hypoprobe.configure(clock=clock, max_series=20000)
rng = random.Random(7)
# The survey draws each request's "surveyed or not" from the random module: seeded, so the
# 95% intervals below are checked on one fixed sample, not on a 1-in-20 chance per run.
random.seed(7)
conn = _survey.wrap_connection(Connection())
results: dict[str, Any] = {"sampling": []}
for rate in (0.2, 0.5):
    hypoprobe.survey(rate=rate, max_candidates=20)
    conn = _survey.wrap_connection(Connection())
    endpoint = f"GET /sampled/{rate}"
    total_p = total_e = 0
    n = 3000
    for _ in range(n):
        with hypoprobe.endpoint(endpoint):
            other = rng.randint(1_000_000, 9_000_000)
            # Heavy-tailed statement time: a few requests carry much of it.
            cost = rng.randint(100_000, 900_000) if rng.random() > 0.1 else 20_000_000
            conn.execute("SELECT * FROM t WHERE id = 1", cost)
            NOW[0] += other
        total_p += cost
        total_e += cost + other
    found = survey_of(hypoprobe.snapshot(), endpoint=endpoint)
    cand = found.endpoints[0].candidates[0]
    results["sampling"].append(
        {
            "rate": rate,
            "requests": n,
            "surveyed": found.endpoints[0].requests,
            "true_share": total_p / total_e,
            "share": cand.share,
            "ci_low": cand.ci_low,
            "ci_high": cand.ci_high,
        }
    )

hypoprobe.survey(rate=1.0, max_candidates=25)
conn = _survey.wrap_connection(Connection())
statements = 3000
with hypoprobe.endpoint("GET /many"):
    for i in range(statements):
        conn.execute(f"SELECT c{i} FROM t{i} WHERE id = 1", 1000)
found = survey_of(hypoprobe.snapshot(), endpoint="GET /many")
cands = found.endpoints[0].candidates
overflow = [c for c in cands if c.overflow]
results["caps"] = {
    "max_candidates": 25,
    "statements": statements,
    "candidates": len(cands),
    "overflow_probe": overflow[0].probe if overflow else None,
    "overflow_calls": overflow[0].calls_per_request_mean if overflow else 0,
    "probe_seconds": sum(c.total_seconds for c in cands),
    "statement_seconds": statements * 1000 / 1e9,
}
# A statement first called halfway: its share is over every surveyed request.
late_p = late_e = 0
for i in range(200):
    with hypoprobe.endpoint("GET /late"):
        conn.execute("SELECT a FROM early", 1_000_000)
        if i >= 100:
            conn.execute("SELECT b FROM late", 3_000_000)
            late_p += 3_000_000
        NOW[0] += 6_000_000
    late_e += 7_000_000 + (3_000_000 if i >= 100 else 0)
found = survey_of(hypoprobe.snapshot(), endpoint="GET /late")
late = next(c for c in found.endpoints[0].candidates if c.probe == "SELECT b FROM late")
results["late"] = {
    "requests": found.endpoints[0].requests,
    "share": late.share,
    "true_share": late_p / late_e,
    "calls_per_request_mean": late.calls_per_request_mean,
}
# Threads: every request and every call counted, exactly.
hypoprobe.configure(clock=time.perf_counter_ns)


def worker() -> None:
    db = _survey.wrap_connection(sqlite3.connect(":memory:", check_same_thread=False))
    for i in range(200):
        with hypoprobe.endpoint("GET /threads"):
            db.execute("SELECT ?", (i,)).fetchall()
            db.execute("SELECT ? + 1", (i,)).fetchall()
            db.execute("SELECT ? + 1", (i,)).fetchall()


threads = [threading.Thread(target=worker) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
found = survey_of(hypoprobe.snapshot(), endpoint="GET /threads")
results["threads"] = {
    "requests": found.endpoints[0].requests,
    "calls": {c.probe: c.calls_per_request_mean for c in found.endpoints[0].candidates},
}
(out / "result.json").write_text(json.dumps(results), encoding="utf-8")
