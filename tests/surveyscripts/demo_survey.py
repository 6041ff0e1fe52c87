"""Survey the demo app in its own process: phase A with no hypothesis, phase B with the
demo's hypotheses loaded too (the same requests measured both ways). Writes JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import hypoprobe
from hypoprobe import analysis
from hypoprobe.analysis._survey import survey_of
from hypoprobe.demo import loadgen
from hypoprobe.demo._server import serve_app
from hypoprobe.demo._story import current_hypotheses
from hypoprobe.demo.app import HYPOTHESES, create_app
from hypoprobe.render._survey import as_dict, propose

out = Path(sys.argv[1])
requests = int(sys.argv[2])
rate = float(sys.argv[3])
hypoprobe.survey(rate=rate, modules=["hypoprobe.demo.app._web"], slow_threshold=0.025)
app = create_app(f"sqlite:///{out / 'campaigns.sqlite'}")
with serve_app(app) as server:
    start = hypoprobe.snapshot()
    loadgen.run(server.url, requests=requests, seed=3)
    a = hypoprobe.snapshot().minus(start)
    (out / "a.json").write_text(a.to_json(), encoding="utf-8")
    found_a = survey_of(a)
    (out / "proposed.toml").write_text(propose(found_a, top=3), encoding="utf-8")
    declared = current_hypotheses(HYPOTHESES, out)
    hypoprobe.load(declared)
    start = hypoprobe.snapshot()
    loadgen.run(server.url, requests=requests, seed=4)
    b = hypoprobe.snapshot().minus(start)
    (out / "b.json").write_text(b.to_json(), encoding="utf-8")
hypoprobe.unload(declared)  # phase C: the proposed hypotheses alone
hypoprobe.load(out / "proposed.toml")
# A new app: SQL matchers apply to the connections opened after they are loaded.
with serve_app(create_app(f"sqlite:///{out / 'campaigns.sqlite'}")) as server:
    start = hypoprobe.snapshot()
    loadgen.run(server.url, requests=requests, seed=5)
    c = hypoprobe.snapshot().minus(start)


def verdicts(snap: hypoprobe.Snapshot) -> dict[str, dict[str, object]]:
    return {
        v.hypothesis: {
            "endpoint": v.endpoint,
            "share": v.aggregate_share,
            "ci_low": v.ci_low,
            "ci_high": v.ci_high,
            "claim": v.claim,
        }
        for v in analysis.report(snap).verdicts
    }


rep_b = analysis.report(b)
json.dump(
    {
        "a": as_dict(found_a),
        "b": as_dict(survey_of(b)),
        "c": as_dict(survey_of(c)),
        "verdicts_b": verdicts(b),
        "verdicts_c": verdicts(c),
        "notes_b": list(rep_b.notes),
    },
    (out / "result.json").open("w"),
    default=str,
)
