"""hypoprobe's own share of an endpoint's latency, from the snapshot's self-cost estimate."""

from __future__ import annotations

from ..snapshot import Snapshot

__all__ = ["self_figures"]


def self_figures(snap: Snapshot, endpoint: str) -> dict[str, float | None]:
    """``self_seconds`` (estimated, summed over the window) and ``self_share`` of the
    endpoint's time; both None when the data carries no estimate for the endpoint.

    The endpoint's measured time already includes hypoprobe's own time inside the scope,
    so the share is of the latency as it was, probes on.

    Example::

        figures = self_figures(snap, "GET /campaigns")
        print(f"probes cost {figures['self_share']:.2%} of GET /campaigns")
    """
    seconds = snap.self_seconds.get(endpoint)
    if seconds is None:
        return {"self_seconds": None, "self_share": None}
    data = snap.endpoint(endpoint)
    total = data.duration.sum if data is not None else 0.0
    return {"self_seconds": seconds, "self_share": seconds / total if total > 0 else None}
