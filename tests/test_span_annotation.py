"""configure(annotate_spans=True): a trace view shows each hypothesis' part of the request."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import hypoprobe
from conftest import FakeClock

MS = 1_000_000


@pytest.fixture
def finished_spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def _one_traced_request(
    spans: tuple[TracerProvider, InMemorySpanExporter], clock: FakeClock, hid: str, ep: str
) -> ReadableSpan:
    """A request in a span: 3 probe calls of 2 ms in 10 ms. Returns the finished span."""
    provider, exporter = spans
    with provider.get_tracer("t").start_as_current_span("GET"), hypoprobe.endpoint(ep):
        for _ in range(3):
            with hypoprobe.probe(hid, name="query"):
                clock.advance(2 * MS)
        clock.advance(4 * MS)
    (span,) = exporter.get_finished_spans()
    return span


def test_annotated_span_carries_probe_time_share_and_calls(
    finished_spans: tuple[TracerProvider, InMemorySpanExporter],
    fake_clock: FakeClock,
    unique_id: Callable[..., str],
    restore_config: None,
) -> None:
    hid, ep = unique_id(), unique_id("GET /annotated")
    hypoprobe.hypothesis(hid, claim="c", endpoint=ep, min_share=0.5)
    hypoprobe.configure(annotate_spans=True)

    span = _one_traced_request(finished_spans, fake_clock, hid, ep)

    attributes = dict(span.attributes or {})
    assert attributes["hypoprobe.hypotheses"] == (hid,)
    assert attributes[f"hypoprobe.{hid}.probe_seconds"] == 0.006
    assert attributes[f"hypoprobe.{hid}.share"] == pytest.approx(0.6)
    assert attributes[f"hypoprobe.{hid}.calls"] == 3


def test_spans_are_left_alone_by_default(
    finished_spans: tuple[TracerProvider, InMemorySpanExporter],
    fake_clock: FakeClock,
    unique_id: Callable[..., str],
) -> None:
    hid, ep = unique_id(), unique_id("GET /plain")
    hypoprobe.hypothesis(hid, claim="c", endpoint=ep, min_share=0.5)
    assert hypoprobe.configure().annotate_spans is False

    span = _one_traced_request(finished_spans, fake_clock, hid, ep)

    assert not [k for k in (span.attributes or {}) if k.startswith("hypoprobe.")]


def test_annotate_spans_must_be_a_bool() -> None:
    with pytest.raises(hypoprobe.ConfigurationError, match="annotate_spans"):
        hypoprobe.configure(annotate_spans="yes")
