"""The snapshot parser against hostile documents: every document is either a snapshot that
every report, comparison and format can handle, or a ``SnapshotError`` — nothing else.

The named cases are the breaks an attack campaign found (each raised out of ``from_json`` or
out of a renderer later); the ``hypothesis`` test mutates a real recorded document at random.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypoprobe import analysis, render
from hypoprobe.errors import SnapshotError
from hypoprobe.model import Snapshot
from readside import recorded_document

MAX_COUNT = 2**63 - 1  # the recorders' counters are 64-bit


def _slow_request(doc: dict[str, Any]) -> dict[str, Any]:
    """A slowest-list entry for the document's hypothesis (added if the story kept none)."""
    if not doc["slowest"]:
        doc["slowest"].append(
            {
                "hypothesis": "REL-READ",
                "endpoint": "GET /reliability",
                "kind": "share",
                "endpoint_seconds": 1.5,
                "probe_seconds": 1.2,
                "calls": 3,
                "share": 0.8,
                "at": 1_700_000_000.0,
                "trace_id": None,
            }
        )
    entry: dict[str, Any] = doc["slowest"][0]
    return entry


def _every_view(snap: Snapshot) -> None:
    """Everything the CLI does with a snapshot: report, compare, every format."""
    try:
        rep = analysis.report(snap)
    except analysis.NoDataError:
        return
    for fmt in render.FORMATS:
        render.render_report(rep, fmt)
    try:
        comparison = analysis.compare(snap, snap)
    except analysis.NoDataError:
        return
    for fmt in render.FORMATS:
        render.render_comparison(comparison, fmt)


def _parse(text: str) -> Snapshot | SnapshotError:
    try:
        snap = Snapshot.from_json(text)
    except SnapshotError as exc:
        error = exc
    else:
        _every_view(snap)
        return snap
    assert str(error).isprintable(), str(error)  # the CLI prints it as one line
    return error


def test_the_recorded_document_is_valid_and_renders() -> None:
    snap = _parse(json.dumps(recorded_document()))
    assert isinstance(snap, Snapshot)
    assert snap.hypothesis("REL-READ") is not None


def test_json_nested_a_thousand_levels_deep_is_a_snapshot_error() -> None:
    for depth in (1_000, 100_000):
        text = '{"schema": "hypoprobe.snapshot/1", "x": ' + "[" * depth + "]" * depth + "}"
        with pytest.raises(SnapshotError, match="nested too deeply"):
            Snapshot.from_json(text)


def test_a_value_nested_just_below_the_parsers_limit_is_a_snapshot_error() -> None:
    doc = recorded_document()
    doc["source"] = json.loads("[" * 900 + "]" * 900)
    assert isinstance(_parse(json.dumps(doc)), SnapshotError)


def test_an_integer_of_more_than_4300_digits_is_a_snapshot_error() -> None:
    text = '{"padding": ' + "9" * 5000 + ", " + json.dumps(recorded_document())[1:]
    with pytest.raises(SnapshotError, match="not valid JSON"):
        Snapshot.from_json(text)


_BAD_NUMBERS = [math.inf, -math.inf, math.nan, 10**400, 2**63, 1e300, -1, True, "12", None]


@pytest.mark.parametrize("value", _BAD_NUMBERS, ids=repr)
@pytest.mark.parametrize(
    "where", ["moment requests", "moment seconds", "bucket count", "slowest calls"]
)
def test_infinities_and_huge_numbers_in_counts_are_snapshot_errors(value: Any, where: str) -> None:
    doc = recorded_document()
    if where == "moment requests":
        doc["moments"][0]["requests"] = value
    elif where == "moment seconds":
        if isinstance(value, int | float) and not isinstance(value, bool) and value < 10**308:
            return  # a finite sum (huge, negative) is a number; the analysis copes (below)
        doc["moments"][0]["probe_seconds"] = value
    elif where == "bucket count":
        doc["endpoints"][0]["duration"]["counts"][0][1] = value
    else:
        _slow_request(doc)["calls"] = value
    assert isinstance(_parse(json.dumps(doc)), SnapshotError)


@pytest.mark.parametrize("value", [1e300, 1e308, -1e308, 1e-300])
def test_huge_finite_moments_give_a_verdict_not_an_overflow(value: float) -> None:
    doc = recorded_document()
    for mo in doc["moments"]:
        for key in ("probe_seconds_squared", "endpoint_seconds_squared", "probe_seconds"):
            mo[key] = value
    snap = _parse(json.dumps(doc))
    assert isinstance(snap, Snapshot)
    (v,) = analysis.report(snap).verdicts
    assert v.verdict == analysis.INCONCLUSIVE or v.ci_low is not None


@pytest.mark.parametrize("value", [math.inf, math.nan, 1e20, -5.0, 253_402_300_800.0])
@pytest.mark.parametrize("field", ["created_at", "slowest at", "exemplar timestamp"])
def test_times_no_date_can_show_are_snapshot_errors(value: float, field: str) -> None:
    doc = recorded_document()
    if field == "created_at":
        doc["created_at"] = value
    elif field == "slowest at":
        _slow_request(doc)["at"] = value
    else:
        doc["endpoints"][0]["duration"]["exemplars"] = [[0, 0.1, "ab" * 16, "cd" * 8, value]]
    with pytest.raises(SnapshotError, match="corrupt snapshot"):
        Snapshot.from_json(json.dumps(doc))


def test_the_latest_time_a_date_can_show_is_accepted_and_rendered() -> None:
    doc = recorded_document()
    doc["created_at"] = 253_402_300_799.0
    _slow_request(doc)["at"] = 253_402_300_799.0
    snap = _parse(json.dumps(doc))
    assert isinstance(snap, Snapshot)
    assert "9999-12-31" in render.render_report(analysis.report(snap), "table")


@pytest.mark.parametrize("value", [math.nan, math.inf, -0.5, 1.5, "0.3", None])
def test_a_min_share_that_is_not_a_share_is_a_snapshot_error(value: Any) -> None:
    doc = recorded_document()
    doc["hypotheses"][0]["min_share"] = value
    with pytest.raises(SnapshotError):
        Snapshot.from_json(json.dumps(doc))


def test_histograms_without_bounds_give_verdicts_without_quantiles() -> None:
    doc = recorded_document()
    only_inf = {"bounds": [], "counts": [[0, 600]], "sum": 30.0}
    doc["endpoints"][0]["duration"] = only_inf
    for r in doc["requests"]:
        for key in ("probe_seconds_fast", "probe_seconds_slow", "share", "calls"):
            r[key] = only_inf
    for p in doc["probes"]:
        p["duration"] = only_inf
    snap = _parse(json.dumps(doc))
    assert isinstance(snap, Snapshot)
    (v,) = analysis.report(snap).verdicts
    assert v.endpoint_p95 is None
    assert v.calls_per_request_p95 is None
    assert v.requests == 600


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("source",), ["not", "text"]),
        (("endpoints", 0, "endpoint"), 7),
        (("unregistered",), "PERF-1"),
        (("unregistered",), [{"id": 1}]),
        (("internal_errors",), {"kind": "many"}),
        (("internal_errors",), [1, 2]),
        (("self_seconds",), {"GET /reliability": math.inf}),
        (("self_seconds",), {"GET /reliability": "0.1"}),
        (("self_seconds",), [0.1]),
        (("outcomes",), [{"endpoint": "e", "status": "2xx", "exception": "", "count": "3"}]),
        (("hypotheses", 0, "endpoints"), "GET /reliability"),
        (("endpoints", 0, "duration", "counts"), "[[0, 1]]"),
        (("endpoints", 0, "duration"), {"bounds": [0.1, math.nan], "counts": [], "sum": 0}),
        (("endpoints", 0, "duration"), {"bounds": [0.0, 1.0], "counts": [], "sum": 0}),
        (("requests", 0, "calls"), {"bounds": [-1.0, 1.0], "counts": [], "sum": 0}),
        (("customers",), [None]),
        (("customers",), ["sketch"]),
    ],
    ids=str,
)
def test_values_of_the_wrong_type_are_snapshot_errors(path: tuple[Any, ...], value: Any) -> None:
    doc = recorded_document()
    node: Any = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert isinstance(_parse(json.dumps(doc)), SnapshotError)


@pytest.mark.parametrize("where", ["slowest", "moments", "targets"])
@pytest.mark.parametrize("key", ["\n", "x\r\ny", "\x1b[31mred"])
def test_an_unknown_field_is_named_on_one_line(where: str, key: str) -> None:
    # Found by the fuzz test below: the field name reached the message raw.
    doc = recorded_document()
    if where == "slowest":
        _slow_request(doc)
    if where == "targets":
        doc["targets"] = [{"hypothesis": "REL-READ"}]
    doc[where][0][key] = None
    error = _parse(json.dumps(doc))
    assert isinstance(error, SnapshotError)
    assert "unknown field" in str(error)
    assert str(error).isprintable()
    assert repr(key) in str(error)


def test_counts_up_to_the_64_bit_limit_are_accepted() -> None:
    doc = recorded_document()
    doc["outcomes"] = [{"endpoint": "e", "status": "2xx", "exception": "", "count": MAX_COUNT}]
    snap = _parse(json.dumps(doc))
    assert isinstance(snap, Snapshot)
    assert snap.outcomes[0].count == MAX_COUNT


# -- fuzzing ------------------------------------------------------------------------------

_HOSTILE_TEXT = st.sampled_from(
    ["", "<script>alert(1)</script>", "\x1b[2J\x07", "\u202egnp.exe", "|a|b|", "x" * 300]
)
_JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([10**400, 2**63 - 1, 2**63]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e20, -1.0, 0.0, 253_402_300_800.0, 1e-320]),
    st.text(max_size=20),
    _HOSTILE_TEXT,
)
_JSON = st.recursive(
    _JSON_LEAF,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


_EDGE_NUMBERS = st.sampled_from(
    [math.inf, -math.inf, math.nan, 10**400, 2**63, 2**63 - 1, 1e308, 1e20, -1, -1e-9, 0, 1e-320]
)


def _fields(node: Any, prefix: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], Any]:
    """One path per distinct field (list items: the first only), with its value."""
    out: dict[tuple[Any, ...], Any] = {prefix: node} if prefix else {}
    if isinstance(node, dict):
        for k, v in node.items():
            out.update(_fields(v, (*prefix, k)))
    elif isinstance(node, list) and node:
        out.update(_fields(node[0], (*prefix, 0)))
    return out


_BASE = recorded_document()
_BASE["slowest"] = _BASE["slowest"][:1] or [
    {
        "hypothesis": "REL-READ",
        "endpoint": "GET /reliability",
        "kind": "latency",
        "endpoint_seconds": 1.5,
        "probe_seconds": 1.2,
        "calls": 3,
        "share": 0.8,
        "at": 1_700_000_000.0,
        "trace_id": "ab" * 16,
    }
]
_BASE["endpoints"][0]["duration"]["exemplars"] = [[3, 0.01, "ab" * 16, "cd" * 8, 1.7e9]]
_FIELDS = _fields(_BASE)
_PATHS = sorted(_FIELDS, key=repr)


@st.composite
def mutated_documents(draw: st.DrawFn) -> str:
    """The recorded document with one to four fields replaced or removed: numbers by edge
    numbers mostly, text by hostile text mostly, anything by any JSON sometimes."""
    doc = copy.deepcopy(_BASE)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(_PATHS))
        original = _FIELDS[path]
        if isinstance(original, int | float) and not isinstance(original, bool):
            value = draw(st.one_of(_EDGE_NUMBERS, _EDGE_NUMBERS, _JSON))
        elif isinstance(original, str):
            value = draw(st.one_of(_HOSTILE_TEXT, _HOSTILE_TEXT, _JSON))
        else:
            value = draw(_JSON)
        node: Any = doc
        try:
            for key in path[:-1]:
                node = node[key]
            if draw(st.integers(0, 9)) == 0 and isinstance(node, dict):
                node.pop(path[-1], None)
            else:
                node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation replaced part of the path
    return json.dumps(doc)  # Infinity and NaN as JSON's extension tokens, as files may have


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated_documents())
def test_fuzz_every_document_is_a_usable_snapshot_or_a_snapshot_error(text: str) -> None:
    _parse(text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_JSON, st.booleans())
def test_fuzz_arbitrary_json_is_a_usable_snapshot_or_a_snapshot_error(
    doc: Any, with_schema: bool
) -> None:
    if isinstance(doc, dict) and with_schema:
        doc["schema"] = "hypoprobe.snapshot/1"
    _parse(json.dumps(doc))
