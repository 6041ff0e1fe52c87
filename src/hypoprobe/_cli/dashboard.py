"""``hypoprobe dashboard``: a Grafana dashboard (JSON) with a row per hypothesis.

Each row shows the fleet-wide aggregate share (5 m and 1 h, and among slow requests)
against the claim's ``min_share`` and the anecdote's share, the distribution of per-request
shares as a heatmap, the endpoint's p50/p95/p99 latency, the probe's calls per request,
and the claim, owner and ticket from ``hypoprobe_hypothesis_info``.

Hypotheses declared in modules named with ``--import`` get a row each, with their
``min_share`` and anecdote drawn as reference lines. Without any, the dashboard has one row
repeated for every value of its ``hypothesis`` variable (read from
``hypoprobe_hypothesis_info``), where the claim table shows ``min_share`` and the anecdote.

Every expression reads hypoprobe's raw metrics, so the dashboard works with or without the
recording rules of ``hypoprobe rules``. Import it in Grafana (Dashboards, New, Import)
and pick the Prometheus data source.

Example::

    $ hypoprobe dashboard --import myapp.hypotheses > hypoprobe-dashboard.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator, Sequence
from typing import Any

from .. import _metrics as m
from .rules import add_hypothesis_arguments, checked_hypotheses

__all__: list[str] = []

HELP = "print a Grafana dashboard (JSON) with a row per hypothesis"

EXAMPLES = """examples:
  hypoprobe dashboard -o hypoprobe-dashboard.json
  hypoprobe dashboard --import myapp.hypotheses --title "checkout hypotheses" -o dash.json
"""

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
_RE_SPECIAL = set("\\.+*?()|[]{}^$")
_WIDTH = 24


def promql_string(value: str) -> str:
    """``value`` as a double-quoted PromQL string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _regex_escape(value: str) -> str:
    return "".join("\\" + c if c in _RE_SPECIAL else c for c in value)


def matcher(label: str, values: Sequence[str]) -> str:
    """``label="v"`` for one value, an anchored alternation for several."""
    if len(values) == 1:
        return f"{label}={promql_string(values[0])}"
    return f"{label}=~{promql_string('|'.join(_regex_escape(v) for v in values))}"


class _Panels:
    """Lays panels out on Grafana's 24-column grid and numbers them."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.y = 0
        self.x = 0
        self.next_id = 1

    def row(self, title: str, **extra: Any) -> None:
        if self.x:
            self.x, self.y = 0, self.y + 8
        self._add({"type": "row", "title": title, "collapsed": False, "panels": [], **extra}, 24, 1)

    def panel(self, panel: dict[str, Any], width: int, height: int = 8) -> None:
        if self.x + width > _WIDTH:
            self.x, self.y = 0, self.y + height
        self._add(panel, width, height)

    def _add(self, panel: dict[str, Any], width: int, height: int) -> None:
        panel["id"] = self.next_id
        panel["gridPos"] = {"h": height, "w": width, "x": self.x, "y": self.y}
        self.next_id += 1
        self.items.append(panel)
        self.x += width
        if self.x >= _WIDTH:
            self.x, self.y = 0, self.y + height


def _target(expr: str, legend: str, ref: str, **extra: Any) -> dict[str, Any]:
    return {
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend,
        "refId": ref,
        **extra,
    }


def _timeseries(title: str, targets: list[dict[str, Any]], unit: str) -> dict[str, Any]:
    return {
        "type": "timeseries",
        "title": title,
        "datasource": DATASOURCE,
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom"}},
    }


def _row_panels(
    panels: _Panels,
    hyp: str,
    endpoints: Sequence[str] | None,
    min_share: float | None,
    observed: float | None,
) -> None:
    h = matcher("hypothesis", [hyp]) if not hyp.startswith("$") else f'hypothesis=~"{hyp}"'
    probe_s = m.MOMENT_PROBE.name + "_total"
    endpoint_s = m.MOMENT_ENDPOINT.name + "_total"
    by = "sum by (endpoint)"
    shares = []
    for ref, window, slow, legend in (
        ("A", "5m", "", "share 5m {{endpoint}}"),
        ("B", "1h", "", "share 1h {{endpoint}}"),
        ("C", "5m", ',slow="true"', "slow requests 5m {{endpoint}}"),
    ):
        expr = (
            f"{by} (rate({probe_s}{{{h}{slow}}}[{window}]))\n/\n"
            f"{by} (rate({endpoint_s}{{{h}{slow}}}[{window}]))"
        )
        shares.append(_target(expr, legend, ref))
    if min_share is not None:
        shares.append(_target(f"vector({min_share:.6g})", "claim: min_share", "D"))
    if observed is not None:
        shares.append(_target(f"vector({observed:.6g})", "anecdote: observed share", "E"))
    shares.append(_target(_self_share_expr(h, endpoints), "hypoprobe's own cost {{endpoint}}", "F"))
    panels.panel(_timeseries("Aggregate share of endpoint time (fleet)", shares, "percentunit"), 12)

    # Classic buckets, or the native histogram (protobuf scrape), which Grafana's heatmap
    # draws from its own buckets.
    heat = _target(
        f"sum by (le) (increase({m.REQUEST_SHARE.name}_bucket{{{h}}}[$__rate_interval]))\nor\n"
        f"sum(increase({m.REQUEST_SHARE.name}{{{h}}}[$__rate_interval]))",
        "{{le}}",
        "A",
        format="heatmap",
    )
    panels.panel(
        {
            "type": "heatmap",
            "title": "Per-request share distribution",
            "datasource": DATASOURCE,
            "targets": [heat],
            "options": {"calculate": False, "yAxis": {"unit": "percentunit"}},
        },
        12,
    )

    # Without known endpoints, the join below keeps those the info series names.
    e_sel = "{" + matcher("endpoint", endpoints) + "}" if endpoints else ""
    latency_targets = []
    for ref, q in (("A", "0.5"), ("B", "0.95"), ("C", "0.99")):
        inner = f"rate({m.ENDPOINT_DURATION.name}_bucket{e_sel}[5m])"
        native = f"rate({m.ENDPOINT_DURATION.name}{e_sel}[5m])"
        if not endpoints:
            inner += (
                f" * on (endpoint) group_left max by (endpoint) ({m.HYPOTHESIS_INFO.name}{{{h}}})"
            )
            # `and`, not `*`: a native histogram does not multiply by a float vector.
            native += f" and on (endpoint) max by (endpoint) ({m.HYPOTHESIS_INFO.name}{{{h}}})"
        # Classic buckets, or the native histogram where the server keeps only that.
        expr = (
            f"histogram_quantile({q}, sum by (endpoint, le) ({inner}))\nor\n"
            f"histogram_quantile({q}, sum by (endpoint) ({native}))"
        )
        latency_targets.append(_target(expr, f"p{round(float(q) * 100)} {{{{endpoint}}}}", ref))
    panels.panel(_timeseries("Endpoint latency", latency_targets, "s"), 8)

    calls = m.REQUEST_CALLS.name
    by3 = "sum by (probe, endpoint)"
    calls_expr = (
        f"({by3} (rate({calls}_sum{{{h}}}[5m]))\n/\n{by3} (rate({calls}_count{{{h}}}[5m])))\nor\n"
        f"({by3} (histogram_sum(rate({calls}{{{h}}}[5m])))\n/\n"
        f"{by3} (histogram_count(rate({calls}{{{h}}}[5m]))))"
    )
    panels.panel(
        _timeseries(
            "Probe calls per request", [_target(calls_expr, "{{probe}} {{endpoint}}", "A")], "short"
        ),
        8,
    )

    info = _target(f"{m.HYPOTHESIS_INFO.name}{{{h}}}", "", "A", format="table", instant=True)
    panels.panel(
        {
            "type": "table",
            "title": "Claim, owner, ticket",
            "datasource": DATASOURCE,
            "targets": [info],
            "transformations": [
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True, "Value": True, "__name__": True},
                        "indexByName": {
                            "hypothesis": 0,
                            "claim": 1,
                            "endpoint": 2,
                            "min_share": 3,
                            "observed_share": 4,
                            "owner": 5,
                            "ticket": 6,
                            "expires": 7,
                        },
                    },
                }
            ],
        },
        8,
    )
    _customer_panels(panels, h)


def _customer_panels(panels: _Panels, h: str) -> None:
    """Customers affected (per-host gauges: sum an upper bound, max a lower) and saving/day."""
    from .. import _customers_export as cx

    affected = f'{{{h},kind="affected"}}'
    seen = f'{{{h},kind="seen"}}'
    counts = [
        _target(f"sum ({cx.DISTINCT}{affected})", "affected, at most (sum of hosts)", "A"),
        _target(f"max ({cx.DISTINCT}{affected})", "affected, at least (largest host)", "B"),
        _target(f"max ({cx.DISTINCT}{seen})", "seen, at least", "C"),
    ]
    panels.panel(_timeseries("Customers affected", counts, "short"), 12)
    saving = [
        _target(f"sum (rate({cx.PROBE}_total{seen}[1h])) * 86400", "seconds per day", "A"),
        _target(
            f"sum (rate({cx.PROBE_VALUE}_total{seen}[1h])) * 86400",
            "value-weighted seconds per day",
            "B",
        ),
    ]
    panels.panel(_timeseries("Saving per day if the probed code cost nothing", saving, "short"), 12)


def _self_share_expr(h: str, endpoints: Sequence[str] | None) -> str:
    """hypoprobe's estimated own time / the endpoint's time (docs/guarding-overhead.md).

    The endpoint's time is its histogram's sum: the classic ``_sum`` series, or the native
    histogram's where the server keeps only that.
    """
    e_sel = "{" + matcher("endpoint", endpoints) + "}" if endpoints else ""
    join = ""
    if not endpoints:  # the endpoints the hypothesis' info series names
        join = f" * on (endpoint) group_left max by (endpoint) ({m.HYPOTHESIS_INFO.name}{{{h}}})"
    own = f"sum by (endpoint) (rate({m.SELF_SECONDS.name}_total{e_sel}[5m]){join})"
    duration = m.ENDPOINT_DURATION.name
    classic = f"sum by (endpoint) (rate({duration}_sum{e_sel}[5m]){join})"
    native = f"sum by (endpoint) (histogram_sum(rate({duration}{e_sel}[5m])){join})"
    return f"{own}\n/\n({classic}\nor\n{native})"


def build(hypotheses: Sequence[Any], title: str = "hypoprobe: hypotheses") -> dict[str, Any]:
    """The dashboard as data: ``hypotheses`` are :class:`hypoprobe.Hypothesis` objects."""
    panels = _Panels()
    if hypotheses:
        for hyp in hypotheses:
            panels.row(f"{hyp.id}: {hyp.claim}")
            _row_panels(panels, hyp.id, hyp.endpoints, hyp.min_share, hyp.observed_share)
    else:
        panels.row("$hypothesis", repeat="hypothesis")
        _row_panels(panels, "$hypothesis", None, None, None)
    return {
        "title": title,
        "uid": "hypoprobe",
        "tags": ["hypoprobe"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "1m",
        "panels": panels.items,
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                },
                {
                    "name": "hypothesis",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "query": {
                        "query": f"label_values({m.HYPOTHESIS_INFO.name}, hypothesis)",
                        "refId": "hypothesis",
                    },
                    "definition": f"label_values({m.HYPOTHESIS_INFO.name}, hypothesis)",
                    "refresh": 2,
                    "multi": True,
                    "includeAll": True,
                    "sort": 1,
                },
            ]
        },
        "annotations": {"list": []},
    }


def expressions(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) for every query target of the dashboard."""
    for panel in dashboard["panels"]:
        for target in panel.get("targets", ()):
            yield panel["title"], target["expr"]


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ._common import add_output_file_argument

    add_hypothesis_arguments(parser)
    parser.add_argument("--title", default="hypoprobe: hypotheses", help="the dashboard's title")
    add_output_file_argument(parser)


def run(args: argparse.Namespace) -> int:
    from ._common import write_output

    known = checked_hypotheses(args, strict=True)
    if args.hypotheses:
        known = [h for h in known if h.id in set(args.hypotheses)]
    write_output(json.dumps(build(known, args.title), indent=2) + "\n", args.output)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hypoprobe dashboard`` on its own (the ``hypoprobe`` command routes here too)."""
    parser = argparse.ArgumentParser(prog="hypoprobe dashboard", description=HELP)
    add_arguments(parser)
    return run(parser.parse_args(argv))
