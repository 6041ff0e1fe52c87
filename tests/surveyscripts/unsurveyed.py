"""An unsurveyed request's statements skip the survey's proxy after one check; a declared
matcher under it still times them. Writes JSON."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import hypoprobe
from hypoprobe import _survey
from hypoprobe.integrations import dbapi

out = Path(sys.argv[1])
hypoprobe.hypothesis("DECLARED-1", claim="the count", endpoint="GET /u", min_share=0.1)
raw = sqlite3.connect(":memory:")
hypoprobe.survey(rate=1e-9)  # every draw says "not surveyed"
conn = _survey.wrap_connection(dbapi.instrument(raw, "DECLARED-1", match="count"))
result: dict[str, object] = {}
with hypoprobe.endpoint("GET /u"):
    cur = conn.cursor()
    result["unsurveyed_cursor_is_declared_proxy"] = isinstance(cur, dbapi._CursorProxy) and (
        not isinstance(cur.__wrapped__, dbapi._CursorProxy)
    )
    result["unsurveyed_rows"] = conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
hypoprobe.survey(rate=1.0)
with hypoprobe.endpoint("GET /s"):
    cur = conn.cursor()
    result["surveyed_cursor_is_stacked"] = isinstance(cur.__wrapped__, dbapi._CursorProxy)
    result["surveyed_rows"] = conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
snap = hypoprobe.snapshot()
result["declared_calls"] = {
    p.endpoint: p.duration.count
    for p in snap.probes
    if p.hypothesis == "DECLARED-1" and not p.probe.startswith("fetch") and p.duration.count
}
result["survey_endpoints"] = sorted(
    {p.endpoint for p in snap.probes if _survey.is_survey_id(p.hypothesis) and p.duration.count}
)
(out / "result.json").write_text(json.dumps(result), encoding="utf-8")
