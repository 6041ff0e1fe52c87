"""Caps through SQLAlchemy, and the series budget: a survey of many endpoints leaves room
for the hypotheses declared afterwards."""

from __future__ import annotations

import hypoprobe
from hypoprobe import _survey
from hypoprobe._storage import STORAGE
from hypoprobe.analysis._survey import survey_of

hypoprobe.configure(max_series=600)
hypoprobe.survey(max_candidates=4)
from sqlalchemy import create_engine, text  # noqa: E402  (after the survey: hooked on import)

engine = create_engine("sqlite://")
with engine.connect() as conn:
    for e in range(40):
        with hypoprobe.endpoint(f"GET /e{e}"):
            for i in range(10):
                conn.execute(text(f"SELECT {i} AS c{i}"))
found = survey_of(hypoprobe.snapshot())
per_endpoint = {ep.endpoint: ep.candidates for ep in found.endpoints}
assert per_endpoint, "nothing surveyed"
for cands in per_endpoint.values():
    assert len(cands) <= 5, [c.probe for c in cands]
    names = [c.probe for c in cands if c.overflow]
    assert names in ([], ["(other statements)"]), names
first = per_endpoint["GET /e0"]
assert len(first) == 5
overflow = next(c for c in first if c.overflow)
assert overflow.calls_per_request_mean == 6.0
assert _survey._series_budget_spent()
assert len(STORAGE.own_series()) < 600
assert len(per_endpoint) < 40  # later endpoints found no room: not surveyed
assert not STORAGE.dropped, STORAGE.dropped

hypoprobe.hypothesis("PERF-9", claim="c", endpoint="GET /late", min_share=0.1)


@hypoprobe.probe("PERF-9")
def work() -> None:
    pass


with hypoprobe.endpoint("GET /late"):
    work()
assert not STORAGE.dropped, STORAGE.dropped  # the declared hypothesis found room
print("ok")
