"""Live ``/metrics`` endpoints: scrape, parse with prometheus_client, rebuild the snapshot.

Without a window the snapshot holds the totals since each process started. With
``window_seconds`` every target is scraped twice, ``window_seconds`` apart, and the
snapshot holds only what happened in between (``Snapshot.minus`` per target, so a target
that restarted in the window contributes what it recorded since its restart).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from ..model import Snapshot
from . import _http
from ._errors import EXIT_NO_DATA, EXIT_UNREACHABLE, EXIT_USAGE, SourceError
from ._rebuild import PREFIX, Sample, has_data, rebuild, window

__all__ = ["scrape_metrics"]

#: The longest window waited for; ``time.sleep`` overflows a little beyond 290 years.
MAX_WINDOW_SECONDS = 10 * 365.25 * 86400.0
#: Targets scraped at once; enough for a fleet, small enough to be polite.
MAX_PARALLEL = 8
#: The classic text format, which every Prometheus client serves. (prometheus_client
#: switches to OpenMetrics whenever the header names it, whatever its q-value; a server
#: that answers OpenMetrics anyway is parsed with the OpenMetrics parser.)
ACCEPT = "text/plain;version=0.0.4"

Progress = Callable[[str], None]


def scrape_metrics(
    urls: Sequence[str],
    window_seconds: float | None = None,
    progress: Progress | None = None,
    timeout: float = 10.0,
) -> Snapshot:
    """Scrape live ``/metrics`` endpoints and rebuild one snapshot (targets merged).

    A URL without a scheme gets ``http://``; one without a path gets ``/metrics``. With
    ``window_seconds`` each target is scraped twice and only what happened between the two
    scrapes is kept; ``progress`` (if given) is called with a short line as targets are
    scraped, and with ``"waiting ..."`` right after the first round of a windowed scrape.

    Raises :class:`SourceError`: exit code 3 when a target cannot be reached or answers
    with an HTTP error, 4 when it serves no hypoprobe metrics or the window saw no data.

    Example::

        snap = scrape_metrics(["http://web-1:9100/metrics", "http://web-2:9100/metrics"],
                              window_seconds=60)
        print(snap.moments_for("PERF-123", "GET /campaigns").requests)
    """
    if not urls:
        raise SourceError(
            "no /metrics URL given: pass one or more http://HOST:PORT/metrics", EXIT_USAGE
        )
    if window_seconds is not None and not 0 < window_seconds <= MAX_WINDOW_SECONDS:
        raise SourceError(
            f"the window must be a positive number of seconds up to {MAX_WINDOW_SECONDS:g} "
            f"(ten years), got {window_seconds!r}",
            EXIT_USAGE,
        )
    targets = [_http.normalise_url(u, "/metrics") for u in urls]
    twice = sorted({u for u in targets if targets.count(u) > 1})
    if twice:
        raise SourceError(
            f"{twice[0]} is given more than once: its requests would be counted twice",
            EXIT_USAGE,
        )
    first = _scrape_all(targets, timeout, progress)
    if window_seconds is None:
        return first[0] if len(first) == 1 else Snapshot.merge(first)

    if progress is not None:
        progress(f"waiting {window_seconds:g} s for the second scrape")
    # Measured from the end of the first round, so no target's window is shorter.
    time.sleep(window_seconds)
    second = _scrape_all(targets, timeout, progress)
    parts = [window(later, earlier) for later, earlier in zip(second, first, strict=True)]
    snap = parts[0] if len(parts) == 1 else Snapshot.merge(parts)
    if not has_data(snap):
        raise SourceError(
            f"no requests were recorded at {_names(targets)} during the {window_seconds:g} s "
            "window: send traffic, use a longer window, or drop the window for totals",
            EXIT_NO_DATA,
        )
    return snap


def _names(targets: Sequence[str]) -> str:
    return targets[0] if len(targets) == 1 else f"{len(targets)} targets ({targets[0]}, ...)"


def _scrape_all(
    targets: Sequence[str], timeout: float, progress: Progress | None
) -> list[Snapshot]:
    """Scrape every target concurrently, all within ``timeout`` s; results in the order of
    ``targets``. On Ctrl-C the requests still in flight are aborted, not waited for."""
    if len(targets) == 1:
        snap = scrape_one(targets[0], timeout)
        if progress is not None:
            progress(f"scraped {targets[0]}")
        return [snap]
    results: dict[int, Snapshot] = {}

    def take(i: int, snap: Snapshot, done: int) -> None:
        results[i] = snap
        if progress is not None:
            progress(f"scraped {done}/{len(targets)}: {targets[i]}")

    _http.concurrently(
        [(i, functools.partial(scrape_one, url, timeout)) for i, url in enumerate(targets)],
        timeout=timeout,
        workers=min(MAX_PARALLEL, len(targets)),
        each=take,
    )
    return [results[i] for i in range(len(targets))]


def scrape_one(url: str, timeout: float = 10.0, deadline: _http.Deadline | None = None) -> Snapshot:
    """Scrape one ``/metrics`` URL (already normalised) into a snapshot of totals."""
    resp = _http.get(url, timeout=timeout, accept=ACCEPT, deadline=deadline)
    if resp.status != 200:
        raise SourceError(
            f"{url} answered HTTP {resp.status}; check that this is the /metrics URL of a "
            "process running hypoprobe",
            EXIT_UNREACHABLE,
        )
    scraped_at = time.time()
    text = resp.text()
    parse = (
        openmetrics_families
        if resp.content_type.startswith("application/openmetrics-text")
        else text_string_to_metric_families
    )
    samples: list[Sample] = []
    hypoprobe_families = 0
    try:
        for family in parse(text):
            if not family.name.startswith(PREFIX):
                continue
            hypoprobe_families += 1
            samples.extend(Sample(s.name, s.labels, s.value) for s in family.samples)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise SourceError(
            f"{url} did not answer with Prometheus metrics ({type(exc).__name__}: {exc}); "
            "check that this is a /metrics URL",
            EXIT_NO_DATA,
        ) from None
    if not hypoprobe_families:
        raise SourceError(
            f"{url} serves no hypoprobe metrics; import hypoprobe in that process (its "
            "collector joins prometheus_client's default registry) or point at the right port",
            EXIT_NO_DATA,
        )
    return rebuild(samples, source=f"metrics {url}", created_at=scraped_at)
