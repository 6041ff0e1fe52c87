"""Segments: "this query causes the poor performance of this endpoint *for these users*"."""

from __future__ import annotations

import itertools

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

import hypoprobe
from hypoprobe.model import Snapshot

_ids = itertools.count()


@pytest.fixture
def ids() -> tuple[str, str]:
    n = next(_ids)
    return f"SEG-{n}", f"GET /segments/{n}"


def _requests(endpoint: str, hid: str, plan: object, called: bool) -> None:
    probed = hypoprobe.probe(hid, name="query")
    with hypoprobe.endpoint(endpoint):
        hypoprobe.segment(plan)  # type: ignore[arg-type]
        if called:
            with probed:
                pass


def _moments(snap: Snapshot, hid: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for mo in snap.moments:
        if mo.hypothesis == hid:
            out[mo.segment] = out.get(mo.segment, 0) + mo.requests
    return {segment: n for segment, n in out.items() if n}


def test_shares_are_kept_per_allow_listed_segment(ids: tuple[str, str]) -> None:
    hid, endpoint = ids
    hypoprobe.hypothesis(
        hid, claim="c", endpoint=endpoint, min_share=0.5, segments=["free", "enterprise"]
    )
    for plan, n in (("free", 3), ("enterprise", 2), ("user-4711@example.com", 4)):
        for _ in range(n):
            _requests(endpoint, hid, plan, called=plan == "enterprise")
    snap = hypoprobe.snapshot()
    assert _moments(snap, hid) == {"free": 3, "enterprise": 2, "other": 4}
    enterprise = snap.moments_for(hid, endpoint, segment="enterprise")
    assert enterprise.requests_with_probe == 2
    shares = {r.segment: r.share.count for r in snap.requests if r.hypothesis == hid}
    assert shares == {"free": 3, "enterprise": 2, "other": 4}


def test_raw_values_never_become_labels(ids: tuple[str, str]) -> None:
    hid, endpoint = ids
    registry = prometheus_client.CollectorRegistry()
    hypoprobe.configure(registry=registry)
    try:
        hypoprobe.hypothesis(hid, claim="c", endpoint=endpoint, min_share=0.5, segments=["pro"])
        _requests(endpoint, hid, "alice@example.com", called=True)
        text = prometheus_client.generate_latest(registry).decode()
    finally:
        hypoprobe.configure(registry=prometheus_client.REGISTRY)
    assert "alice" not in text
    segments = {
        s.labels["segment"]
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.labels.get("hypothesis") == hid
        and s.name.startswith(("hypoprobe_request_", "hypoprobe_hypothesis_requests"))
    }
    assert segments <= {"pro", "other"}
    assert "other" in segments


def test_a_hypothesis_scoped_to_one_segment_ignores_other_requests(ids: tuple[str, str]) -> None:
    hid, endpoint = ids
    hypoprobe.hypothesis(hid, claim="c", endpoint=endpoint, min_share=0.5, segment="enterprise")
    for plan in ("free", "enterprise", "pro", "enterprise"):
        _requests(endpoint, hid, plan, called=True)
    _requests(endpoint, hid, None, called=True)
    assert _moments(hypoprobe.snapshot(), hid) == {"enterprise": 2}


def test_unsegmented_hypotheses_use_an_empty_segment_label(ids: tuple[str, str]) -> None:
    hid, endpoint = ids
    hypoprobe.hypothesis(hid, claim="c", endpoint=endpoint, min_share=0.5)
    _requests(endpoint, hid, "enterprise", called=True)
    assert _moments(hypoprobe.snapshot(), hid) == {"": 1}


def test_segment_outside_a_scope_or_of_a_wrong_type_never_raises(ids: tuple[str, str]) -> None:
    hid, endpoint = ids
    hypoprobe.segment("free")
    hypoprobe.hypothesis(hid, claim="c", endpoint=endpoint, min_share=0.5, segments=["free"])
    _requests(endpoint, hid, 42, called=False)
    assert _moments(hypoprobe.snapshot(), hid) == {"other": 1}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"segments": "free"}, "list"),
        ({"segments": []}, "1 to 50"),
        ({"segments": ["other"]}, "other"),
        ({"segments": ["a b"]}, "letters"),
        ({"segment": "pro", "segments": ["free"]}, "not in segments"),
    ],
)
def test_bad_segment_declarations_are_configuration_errors(
    ids: tuple[str, str], kwargs: dict[str, object], message: str
) -> None:
    hid, endpoint = ids
    with pytest.raises(hypoprobe.ConfigurationError, match=message):
        hypoprobe.hypothesis(hid, claim="c", endpoint=endpoint, min_share=0.5, **kwargs)  # type: ignore[arg-type]


def test_segments_survive_the_snapshot_json_round_trip(ids: tuple[str, str]) -> None:
    hid, endpoint = ids
    hypoprobe.hypothesis(hid, claim="c", endpoint=endpoint, min_share=0.5, segments=["pro"])
    _requests(endpoint, hid, "pro", called=True)
    snap = hypoprobe.snapshot()
    again = Snapshot.from_json(snap.to_json())
    assert again == snap
    info = again.hypothesis(hid)
    assert info is not None
    assert info.segments == ("pro",)
