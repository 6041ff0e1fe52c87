"""A survey with customers named: each candidate's customers seen, and affected (their slow
requests ran it). Writes JSON."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import hypoprobe
from hypoprobe import _survey
from hypoprobe.analysis._survey import survey_of
from hypoprobe.render._survey import as_dict

out = Path(sys.argv[1])
now = [0]


def clock() -> int:
    return now[0]


hypoprobe.configure(clock=clock, customer_key="survey-customers-key-0001")
hypoprobe.survey(rate=1.0, slow_threshold=0.05)
raw = sqlite3.connect(":memory:")
# A statement's time on the fake clock: the SQL function advances it while sqlite runs.
raw.create_function("tick", 1, lambda ns: now.__setitem__(0, now[0] + ns) or 1)
conn = _survey.wrap_connection(raw)
for i in range(60):
    account = i % 12  # twelve customers; the slow report runs only for the first three
    with hypoprobe.endpoint("GET /s"):
        hypoprobe.customer(account, value=10.0 * (account + 1))
        now[0] += 1_000_000
        conn.execute("SELECT tick(1000000) AS cheap").fetchall()
        if account < 3:
            conn.execute("SELECT tick(100000000) AS slow_report").fetchall()
doc = as_dict(survey_of(hypoprobe.snapshot()))
out.joinpath("result.json").write_text(json.dumps(doc))
