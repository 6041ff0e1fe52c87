"""The Prometheus exposition: valid for promtool and both parsers, exact, movable, bounded."""

from __future__ import annotations

import dataclasses
import math
import subprocess
from collections.abc import Callable, Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import REGISTRY, Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

import hypoprobe
from conftest import FakeClock
from hypoprobe.model import Histogram, Snapshot
from hypoprobe.prometheus import families
from servers import require_promtool

MS = 1_000_000

HISTOGRAM_FAMILIES = {
    "hypoprobe_endpoint_duration_seconds": ("endpoint",),
    "hypoprobe_probe_duration_seconds": ("hypothesis", "probe", "endpoint"),
    "hypoprobe_request_probe_seconds": ("hypothesis", "probe", "endpoint", "slow"),
    "hypoprobe_request_share_ratio": ("hypothesis", "probe", "endpoint"),
    "hypoprobe_request_calls": ("hypothesis", "probe", "endpoint"),
}


@pytest.fixture
def recorded(unique_id: Callable[..., str], fake_clock: FakeClock) -> tuple[str, str]:
    """A hypothesis with awkward label values, and some requests recorded for it."""
    hid = unique_id()
    ep = unique_id('GET /campaigns/{id} "quoted" \\ back\nslash ü')
    hypoprobe.hypothesis(
        hid,
        claim='the "count" query\ndominates, 100% \\ sure',
        endpoint=ep,
        min_share=0.5,
        observed=hypoprobe.Observation(probe_seconds=1.2, endpoint_seconds=1.5),
        slow_threshold=0.01,
        owner="perf-team",
        ticket="https://tracker.example/PERF-1?x=1&y=2",
        expires="2999-01-01",
    )
    query = hypoprobe.probe(hid, name='campaigns.count "query"')
    for i in range(20):
        with hypoprobe.endpoint(ep):
            for _ in range(i % 4):
                with query:
                    fake_clock.advance((i + 1) * MS)
            fake_clock.advance(3 * MS)
    with pytest.raises(KeyError), query:
        raise KeyError("missing")
    return hid, ep


class _SnapshotCollector(Collector):
    """Exposes one given snapshot through hypoprobe's own ``families()``."""

    def __init__(self, snap: Snapshot, buckets_per_octave: int) -> None:
        self.snap = snap
        self.buckets_per_octave = buckets_per_octave

    def collect(self) -> Iterator[Metric]:
        return families(self.snap, self.buckets_per_octave)


def _own(hid: str, ep: str | None = None) -> Snapshot:
    """This test's slice of the process snapshot: exposing every test's series is slow."""
    snap = hypoprobe.snapshot()
    return dataclasses.replace(
        snap,
        hypotheses=tuple(h for h in snap.hypotheses if h.id == hid),
        endpoints=tuple(e for e in snap.endpoints if e.endpoint == ep),
        probes=tuple(p for p in snap.probes if p.hypothesis == hid),
        requests=tuple(r for r in snap.requests if r.hypothesis == hid),
        moments=tuple(mo for mo in snap.moments if mo.hypothesis == hid),
        exceptions=tuple(x for x in snap.exceptions if x.hypothesis == hid),
        unregistered=tuple(u for u in snap.unregistered if u == hid),
    )


def _exposition(snap: Snapshot, buckets_per_octave: int = 1, *, openmetrics: bool = False) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snap, buckets_per_octave))
    generate = generate_openmetrics if openmetrics else generate_latest
    return generate(registry).decode()


def _samples(text: str, family: str, **labels: str) -> list[Sample]:
    for fam in text_string_to_metric_families(text):
        if fam.name == family:
            return [s for s in fam.samples if all(s.labels.get(k) == v for k, v in labels.items())]
    return []


def _buckets(text: str, family: str, **labels: str) -> dict[str, float]:
    return {
        s.labels["le"]: s.value
        for s in _samples(text, family, **labels)
        if s.name == f"{family}_bucket"
    }


def test_promtool_check_metrics_passes(recorded: tuple[str, str]) -> None:
    promtool = require_promtool()
    text = generate_latest(REGISTRY)
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_exposition_round_trips_through_the_parser(recorded: tuple[str, str]) -> None:
    hid, ep = recorded
    text = _exposition(_own(hid, ep))
    families = {fam.name: fam for fam in text_string_to_metric_families(text)}
    for name, labels in HISTOGRAM_FAMILIES.items():
        assert families[name].type == "histogram"
        for sample in families[name].samples:
            assert set(labels) <= set(sample.labels)  # the contract's labels, maybe more
    (info,) = [
        s for s in families["hypoprobe_hypothesis_info"].samples if s.labels["hypothesis"] == hid
    ]
    assert info.value == 1.0
    assert info.labels["endpoint"] == ep  # quotes, backslashes and newlines survive
    assert info.labels["claim"] == 'the "count" query\ndominates, 100% \\ sure'
    assert float(info.labels["min_share"]) == 0.5
    assert float(info.labels["observed_share"]) == pytest.approx(0.8)
    assert info.labels["owner"] == "perf-team"
    # The label says the date as written ("through 2999-01-01"); the snapshot keeps the
    # instant the hypothesis goes stale, the next midnight (UTC).
    snap_info = hypoprobe.snapshot().hypothesis(hid)
    assert snap_info is not None
    assert snap_info.expires is not None
    assert snap_info.expires.startswith("2999-01-02T00:00:00")
    assert info.labels["expires"] == "2999-01-01"
    assert families["hypoprobe_hypothesis_requests"].type == "counter"
    requests = _samples(text, "hypoprobe_hypothesis_requests", hypothesis=hid)
    assert sum(s.value for s in requests if s.name.endswith("_total")) == 20
    exceptions = _samples(text, "hypoprobe_probe_exceptions", hypothesis=hid)
    assert [(s.labels["exception"], s.value) for s in exceptions if s.name.endswith("_total")] == [
        ("KeyError", 1.0)
    ]


def _exactly_equal(exposed: dict[str, float], hist: Histogram) -> None:
    cumulative = dict(
        zip((floatToGoString(b) for b in hist.bounds), hist.cumulative(), strict=False)  # type: ignore[no-untyped-call]
    )
    assert exposed, "no buckets exposed"
    assert exposed.pop("+Inf") == hist.count
    for le, value in exposed.items():
        assert le in cumulative, f"le={le} is not an internal bound (interpolated?)"
        assert value == cumulative[le]


def test_exposed_buckets_are_exact_aggregates_of_the_snapshot(recorded: tuple[str, str]) -> None:
    hid, ep = recorded
    snap = _own(hid, ep)
    text = _exposition(snap)

    endpoint = snap.endpoint(ep)
    assert endpoint is not None
    _exactly_equal(
        _buckets(text, "hypoprobe_endpoint_duration_seconds", endpoint=ep), endpoint.duration
    )
    (probe,) = [p for p in snap.probes if (p.hypothesis, p.endpoint) == (hid, ep)]
    _exactly_equal(
        _buckets(text, "hypoprobe_probe_duration_seconds", hypothesis=hid, endpoint=ep),
        probe.duration,
    )
    (request,) = [r for r in snap.requests if r.hypothesis == hid]
    for slow, hist in (("false", request.probe_seconds_fast), ("true", request.probe_seconds_slow)):
        _exactly_equal(
            _buckets(text, "hypoprobe_request_probe_seconds", hypothesis=hid, slow=slow), hist
        )
    _exactly_equal(_buckets(text, "hypoprobe_request_share_ratio", hypothesis=hid), request.share)
    _exactly_equal(_buckets(text, "hypoprobe_request_calls", hypothesis=hid), request.calls)
    (calls_sum,) = [
        s.value
        for s in _samples(text, "hypoprobe_request_calls", hypothesis=hid)
        if s.name.endswith("_sum")
    ]
    assert calls_sum == request.calls.sum == sum(i % 4 for i in range(20))


@pytest.mark.parametrize("buckets_per_octave", [1, 4, 16])
def test_finer_duration_buckets_stay_exact(
    recorded: tuple[str, str], restore_config: None, buckets_per_octave: int
) -> None:
    hid, ep = recorded
    hypoprobe.configure(buckets_per_octave=buckets_per_octave)
    snap = _own(hid, ep)
    text = _exposition(snap, hypoprobe.configure().buckets_per_octave)
    (probe,) = [p for p in snap.probes if (p.hypothesis, p.endpoint) == (hid, ep)]
    exposed = _buckets(text, "hypoprobe_probe_duration_seconds", hypothesis=hid, endpoint=ep)
    assert len(exposed) - 1 == pytest.approx(32 * buckets_per_octave, abs=2)
    _exactly_equal(exposed, probe.duration)


def test_openmetrics_output_parses(recorded: tuple[str, str]) -> None:
    hid, ep = recorded
    text = _exposition(_own(hid, ep), openmetrics=True)
    assert text.endswith("# EOF\n")
    families = {fam.name: fam for fam in parse_openmetrics(text)}  # type: ignore[no-untyped-call]
    assert families["hypoprobe_probe_duration_seconds"].type == "histogram"
    assert families["hypoprobe_hypothesis_requests"].type == "counter"
    samples = families["hypoprobe_hypothesis_info"].samples
    assert any(s.labels["hypothesis"] == hid for s in samples)


def test_configure_registry_moves_the_collector(
    recorded: tuple[str, str], restore_config: None
) -> None:
    hid, _ = recorded
    mine = CollectorRegistry()
    hypoprobe.configure(registry=mine)
    assert hid in generate_latest(mine).decode()
    assert "hypoprobe_" not in generate_latest(REGISTRY).decode()
    hypoprobe.configure(registry=None)
    assert "hypoprobe_" not in generate_latest(mine).decode()
    hypoprobe.configure(registry=REGISTRY)
    assert "hypoprobe_" not in generate_latest(mine).decode()


def test_series_cap_collapses_extra_series_into_overflow(
    unique_id: Callable[..., str], restore_config: None, fake_clock: FakeClock
) -> None:
    before = hypoprobe.snapshot().series_overflow.get("hypoprobe_probe_duration_seconds", 0)
    hypoprobe.configure(max_series=10)  # far fewer than already exist: every new one overflows
    hids = [unique_id(f"cap{i}") for i in range(3)]
    for hid in hids:
        with hypoprobe.probe(hid, name="capped"):
            fake_clock.advance(MS)

    snap = hypoprobe.snapshot()
    assert not [p for p in snap.probes if p.hypothesis in hids]
    (overflow,) = [
        p for p in snap.probes if (p.hypothesis, p.probe, p.endpoint) == ("__overflow__",) * 3
    ]
    assert overflow.duration.count >= 3
    after = snap.series_overflow["hypoprobe_probe_duration_seconds"]
    assert after - before >= 3
    text = _exposition(dataclasses.replace(_own("__overflow__"), probes=(overflow,)))
    (counted,) = [
        s.value
        for s in _samples(
            text, "hypoprobe_series_overflow", metric="hypoprobe_probe_duration_seconds"
        )
        if s.name.endswith("_total")
    ]
    assert counted == after
    assert _buckets(text, "hypoprobe_probe_duration_seconds", hypothesis="__overflow__")


def test_endpoint_names_beyond_the_cap_collapse_into_overflow(
    unique_id: Callable[..., str], restore_config: None, fake_clock: FakeClock
) -> None:
    before = hypoprobe.snapshot()
    overflow_before = before.endpoint("__overflow__")
    count_before = overflow_before.duration.count if overflow_before else 0
    hypoprobe.configure(max_series=10)
    names = [unique_id(f"/raw/url/{i}") for i in range(5)]  # what a bad namer would send
    for name in names:
        with hypoprobe.endpoint(name):
            fake_clock.advance(MS)
    snap = hypoprobe.snapshot()
    assert not [e for e in snap.endpoints if e.endpoint in names]
    overflow = snap.endpoint("__overflow__")
    assert overflow is not None
    assert overflow.duration.count - count_before == 5
    dropped = "hypoprobe_endpoint_duration_seconds"
    assert snap.series_overflow[dropped] - before.series_overflow.get(dropped, 0) == 5


def test_out_of_range_values_are_counted_as_clamped(
    unique_id: Callable[..., str], fake_clock: FakeClock
) -> None:
    hid = unique_id()
    with hypoprobe.probe(hid, name="tiny"):
        fake_clock.advance(10)
    with hypoprobe.probe(hid, name="huge"):
        fake_clock.advance(5 * 3600 * 10**9)
    with hypoprobe.probe(hid, name="fine"):
        fake_clock.advance(MS)
    text = _exposition(_own(hid))

    def clamped(side: str) -> float:
        found = _samples(
            text, "hypoprobe_clamped_values", metric="hypoprobe_probe_duration_seconds", side=side
        )
        return sum(s.value for s in found if s.name.endswith("_total"))

    assert (clamped("low"), clamped("high")) == (1, 1)
    (huge_sum,) = [
        s.value
        for s in _samples(text, "hypoprobe_probe_duration_seconds", hypothesis=hid, probe="huge")
        if s.name.endswith("_sum")
    ]
    assert huge_sum == 5 * 3600.0  # the sum stays exact beyond the last bucket
    assert math.isfinite(huge_sum)
