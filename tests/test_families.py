"""/metrics and the OpenTelemetry export carry the same series: one table, two renderings.

Both exporters walk hypoprobe._families; these tests read what each actually produces (the
text exposition through prometheus_client's parser, the OTel ``MetricsData`` points) and
compare the series, with and without slow thresholds and segments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, cast

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

import hypoprobe
from conftest import FakeClock
from hypoprobe import _families
from hypoprobe import _metrics as m
from hypoprobe.model import Snapshot
from hypoprobe.prometheus import HypoprobeCollector, families

pytest.importorskip("opentelemetry.sdk.metrics")
from hypoprobe import otel

Series = set[tuple[str, frozenset[tuple[str, str]], float]]
FAMILIES = {f.name: f for f in (*_families.HISTOGRAM_FAMILIES, *_families.NUMBER_FAMILIES)}
MS = 1_000_000

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import HistogramDataPoint, NumberDataPoint


class _Fixed(Collector):
    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def collect(self) -> Iterator[Metric]:
        return families(self.snap)


def _text(value: object, label: str = "") -> str:
    # OTel attributes are typed; /metrics writes text. Compare in /metrics' form.
    if label == "observed_share" and isinstance(value, float):
        return f"{value:.4f}"  # a label read by people on /metrics; OTel keeps the double
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float | int):
        return repr(float(value))
    if isinstance(value, tuple | list):
        return ",".join(value)
    return str(value)


def metrics_series(snap: Snapshot) -> Series:
    registry = CollectorRegistry()
    registry.register(_Fixed(snap))
    out: Series = set()
    for fam in text_string_to_metric_families(generate_latest(registry).decode()):
        if fam.name not in FAMILIES:  # the customer figures: their own table
            continue
        for sample in fam.samples:
            if fam.type == "histogram" and not sample.name.endswith("_count"):
                continue
            if sample.name.endswith("_created"):
                continue
            # An unset value is "" on /metrics and left out in OTel.
            labels = frozenset((k, v) for k, v in sample.labels.items() if v != "")
            out.add((fam.name, labels, float(sample.value)))
    return out


def otel_series(snap: Snapshot) -> Series:
    data = otel.metrics_data(snap, histograms="explicit")
    out: Series = set()
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name not in FAMILIES:  # the customer figures: their own table
                    continue
                family = FAMILIES[metric.name]
                label_of = {otel.attribute_name(label): label for label in family.labels}
                for point in metric.data.data_points:
                    labels = frozenset(
                        (label_of[k], _text(v, label_of[k]))
                        for k, v in (point.attributes or {}).items()
                        if _text(v) != ""
                    )
                    # The family says which kind of point it is (explicit histograms here).
                    value = (
                        cast("HistogramDataPoint", point).count
                        if family.kind == "histogram"
                        else cast("NumberDataPoint", point).value
                    )
                    out.add((metric.name, labels, float(value)))
    return out


def _traffic(
    unique_id: Callable[..., str], fake_clock: FakeClock, **declared: object
) -> tuple[str, str]:
    hid, endpoint = unique_id(), f"GET /{unique_id('ep')}"
    hypoprobe.hypothesis(hid, claim="c", endpoint=endpoint, min_share=0.5, **declared)  # type: ignore[arg-type]
    probed = hypoprobe.probe(hid, name="query")
    for i, plan in enumerate(["free", "enterprise", "free", "unknown-plan"]):
        with hypoprobe.endpoint(endpoint):
            hypoprobe.segment(plan)
            if i % 2 == 0:
                with probed:
                    fake_clock.advance(3 * MS if i == 0 else MS)
            fake_clock.advance(2 * MS)
    return hid, endpoint


@pytest.mark.parametrize(
    "declared",
    [
        {},
        {"slow_threshold": 0.004},
        {"segments": ["free", "enterprise"]},
        {"segments": ["free"], "slow_threshold": 0.004, "owner": "team-db", "ticket": "T-1"},
        {"segment": "enterprise", "segments": ["free", "enterprise"]},
    ],
    ids=["plain", "slow", "segments", "segments+slow", "one-segment"],
)
def test_metrics_and_otel_carry_the_same_series(
    declared: dict[str, object], unique_id: Callable[..., str], fake_clock: FakeClock
) -> None:
    hid, _ = _traffic(unique_id, fake_clock, **declared)
    snap = hypoprobe.snapshot()
    prom, otel_ = metrics_series(snap), otel_series(snap)
    assert prom == otel_
    # The comparison is not vacuous: this hypothesis' series are in both.
    mine = {(name, labels) for name, labels, _ in prom if ("hypothesis", hid) in labels}
    assert {name for name, _ in mine} >= {
        m.REQUEST_PROBE.name,
        m.REQUEST_SHARE.name,
        m.MOMENT_REQUESTS.name,
        m.HYPOTHESIS_INFO.name,
    }
    slow_series = {labels for name, labels in mine if ("slow", "true") in labels}
    if "slow_threshold" in declared:
        assert slow_series
    else:  # no slow requests can exist: neither exporter shows zeros forever
        assert not slow_series


def test_every_family_is_in_the_table_and_described() -> None:
    described = {fam.name for fam in HypoprobeCollector().describe()}
    assert described == set(FAMILIES)
    recent = {m.PROBE_TARGET.name, m.SELF_SECONDS.name, m.HYPOTHESIS_EXPIRED.name}
    assert recent <= set(FAMILIES)
    declared = {value.name for value in vars(m).values() if isinstance(value, m.Family)}
    assert declared == set(FAMILIES)


def test_the_table_yields_its_families_in_order() -> None:
    snap = hypoprobe.snapshot()
    assert tuple(f for f, _ in _families.histogram_rows(snap)) == _families.HISTOGRAM_FAMILIES
    assert tuple(f for f, _ in _families.number_rows(snap)) == _families.NUMBER_FAMILIES
