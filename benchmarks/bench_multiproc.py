"""Multi-process mode: the hot path's added cost, and scrape time at fleet scale.

Hot path (group ``multiproc``): the same probe and endpoint scope as ``bench_overhead``,
once with in-memory shards (single-process mode) and once with the thread's shard in a
memory-mapped file (multi-process mode), side by side in one run. Budget: the
multi-process added cost (fastest round, minus the bare call's fastest round) is at most
1.3x the single-process added cost (checked at the end of the module; a breach fails the
run). Fastest rounds, because medians swing by 2x on a machine shared with other work.

Scrape (group ``multiproc-scrape``): collection + Prometheus text exposition of a host's
directory, beside prometheus_client's ``MultiProcessCollector`` on the same shape:

* 32 live workers x 200 histogram series (33 exposed buckets each);
* 2,000 dead workers x 10 series, before compaction (hypoprobe reads 2,000 files, as
  prometheus_client always does) and after (one archive).

Run: ``pytest benchmarks/bench_multiproc.py --benchmark-only``; a summary is printed.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
from prometheus_client import multiprocess
from prometheus_client.mmap_dict import MmapedDict, mmap_key

import hypoprobe
from hypoprobe import _collect
from hypoprobe import _metrics as m
from hypoprobe._core import _buckets, _multiproc
from hypoprobe._core._storage import STORAGE, Storage
from hypoprobe.prometheus import COLLECTOR

from .budgets import LOOP

BUDGET = 1.3
_BEST: dict[str, float] = {}
_SCRAPES: dict[str, float] = {}


def noop() -> None:
    return None


def _loop(fn: Callable[[], Any]) -> None:
    for _ in range(LOOP):
        fn()


@contextlib.contextmanager
def multiproc_mode(directory: Path) -> Iterator[None]:
    """This thread records into a memory-mapped file while inside."""
    hypoprobe.configure(multiproc_dir=str(directory))
    STORAGE.shard()
    try:
        yield
    finally:
        hypoprobe.configure(multiproc_dir=None)
        STORAGE.shard()


def _keep(name: str, benchmark: Any) -> None:
    if benchmark.stats is not None:
        # The minimum: on a shared machine, the round least disturbed by other work.
        _BEST[name] = benchmark.stats.stats.min / LOOP


@pytest.fixture(scope="module", autouse=True)
def budget() -> Iterator[None]:
    hypoprobe.hypothesis("BENCH-MP", claim="benchmark", endpoint="GET /bench-mp", min_share=0.5)
    yield
    bare = _BEST.get("bare")
    lines = []
    for kind in ("probe", "scope"):
        single, multi = _BEST.get(f"{kind}_single"), _BEST.get(f"{kind}_multiproc")
        if bare is None or single is None or multi is None:
            continue
        ratio = (multi - bare) / (single - bare)
        lines.append(
            f"{kind}: added {1e9 * (single - bare):.0f} ns single-process, "
            f"{1e9 * (multi - bare):.0f} ns multi-process: ratio {ratio:.3f} "
            f"(budget <= {BUDGET})"
        )
        assert ratio <= BUDGET, lines[-1]
    for name, seconds in _SCRAPES.items():
        lines.append(f"scrape {name}: {1e3 * seconds:.1f} ms")
    if lines:
        print("\n" + "\n".join(lines))


# --------------------------------------------------------------------------- hot path


@pytest.mark.benchmark(group="multiproc")
def test_bare(benchmark: Any) -> None:
    benchmark(_loop, noop)
    _keep("bare", benchmark)


def _probe_case(benchmark: Any, name: str) -> None:
    probed = hypoprobe.probe("BENCH-MP", name="bench.mp")(noop)
    with hypoprobe.endpoint("GET /bench-mp"):
        probed()
        benchmark(_loop, probed)
    _keep(name, benchmark)


def _scope_case(benchmark: Any, name: str) -> None:
    hypoprobe.probe("BENCH-MP", name="bench.mp")(noop)()

    def one_request() -> None:
        with hypoprobe.endpoint("GET /bench-mp"):
            pass

    one_request()
    benchmark(_loop, one_request)
    _keep(name, benchmark)


@pytest.mark.benchmark(group="multiproc")
def test_probe_single(benchmark: Any) -> None:
    _probe_case(benchmark, "probe_single")


@pytest.mark.benchmark(group="multiproc")
def test_probe_multiproc(benchmark: Any, tmp_path: Path) -> None:
    with multiproc_mode(tmp_path):
        _probe_case(benchmark, "probe_multiproc")


@pytest.mark.benchmark(group="multiproc")
def test_scope_single(benchmark: Any) -> None:
    _scope_case(benchmark, "scope_single")


@pytest.mark.benchmark(group="multiproc")
def test_scope_multiproc(benchmark: Any, tmp_path: Path) -> None:
    with multiproc_mode(tmp_path):
        _scope_case(benchmark, "scope_multiproc")


# --------------------------------------------------------------------------- scrape at scale

_EXPOSED = [_buckets.DURATION.natural_bounds[i] for i in _buckets.duration_exposed(1)]


def _series_labels(n: int) -> list[tuple[str, str, str]]:
    return [(f"SCALE-{i % 10}", f"probe_{i}", f"GET /e{i % 7}") for i in range(n)]


def write_hypoprobe_files(directory: Path, workers: int, series: int, alive: bool) -> None:
    """``workers`` shard files of ``series`` probe-duration histograms each, ~20 buckets used."""
    rng = random.Random(7)
    layout = _buckets.DURATION
    pid = os.getpid()
    started = _multiproc.start_time(pid) if alive else 1  # start time 1: a dead owner
    records = [
        _multiproc.encode_record(
            _multiproc.Record(
                (m.PROBE_DURATION.name, labels),
                layout.name,
                i * layout.slots,
                layout.slots,
                0,
                0,
            )
        )
        for i, labels in enumerate(_series_labels(series))
    ]
    for _ in range(workers):
        shard = _multiproc.ShardFile(
            str(directory),
            pid=pid,
            started=started,
            int_cap=series * layout.slots,
            float_cap=1,
            table_cap=1 << 18,
        )
        shard.append(records)
        ints, _ = shard.views(series * layout.slots, 0)
        for i in range(series):
            base = i * layout.slots + rng.randint(250, 330)
            for k in range(20):
                ints[base + k] += rng.randint(1, 50)
            ints[i * layout.slots + layout.sum_slot] += 10**9
        ints.release()
        del ints


def write_prometheus_client_files(directory: Path, workers: int, series: int) -> None:
    """The same shape in prometheus_client's multiprocess format (histogram_<pid>.db)."""
    rng = random.Random(7)
    name = "hypoprobe_probe_duration_seconds"
    labelnames = ["hypothesis", "probe", "endpoint"]
    for w in range(workers):
        db = MmapedDict(str(directory / f"histogram_{100000 + w}.db"))  # type: ignore[no-untyped-call]
        for labels in _series_labels(series):
            running = 0.0
            for le in [*_EXPOSED, float("inf")]:
                running += rng.randint(0, 50)
                key = mmap_key(
                    name,
                    name + "_bucket",
                    [*labelnames, "le"],
                    [*labels, prometheus_client.utils.floatToGoString(le)],  # type: ignore[no-untyped-call]
                    "help",
                )
                db.write_value(key, running, 0.0)  # type: ignore[no-untyped-call]
            db.write_value(mmap_key(name, name + "_sum", labelnames, list(labels), "help"), 1.0, 0)  # type: ignore[no-untyped-call]
        db.close()  # type: ignore[no-untyped-call]


def hypoprobe_scrape(directory: Path) -> Callable[[], bytes]:
    """Collection + exposition of ``directory`` through hypoprobe's real collector."""
    storage = Storage()
    storage.use_directory(str(directory))
    registry = prometheus_client.CollectorRegistry()
    registry.register(COLLECTOR)

    def scrape() -> bytes:
        saved = _collect.STORAGE  # type: ignore[attr-defined]
        _collect.STORAGE = storage  # type: ignore[attr-defined]
        try:
            return prometheus_client.generate_latest(registry)
        finally:
            _collect.STORAGE = saved  # type: ignore[attr-defined]

    return scrape


def prometheus_client_scrape(directory: Path) -> Callable[[], bytes]:
    registry = prometheus_client.CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    return lambda: prometheus_client.generate_latest(registry)


def _scrape_case(benchmark: Any, name: str, scrape: Callable[[], bytes], rounds: int) -> None:
    body = benchmark.pedantic(scrape, rounds=rounds, iterations=1, warmup_rounds=1)
    assert b"hypoprobe_probe_duration_seconds_bucket" in body
    if benchmark.stats is not None:
        _SCRAPES[name] = benchmark.stats.stats.median


def _scale(config: pytest.Config, n: int) -> int:
    """``n``, or a tenth of it when benchmarks run once untimed (``make test``)."""
    return max(2, n // 10) if config.getoption("benchmark_disable", False) else n


@pytest.fixture(scope="module")
def live_dirs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    ours, theirs = tmp_path_factory.mktemp("hp-live"), tmp_path_factory.mktemp("pc-live")
    workers = _scale(request.config, 32)
    write_hypoprobe_files(ours, workers, 200, alive=True)
    write_prometheus_client_files(theirs, workers, 200)
    return ours, theirs


@pytest.fixture(scope="module")
def dead_dirs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    before, after = tmp_path_factory.mktemp("hp-dead"), tmp_path_factory.mktemp("hp-compacted")
    theirs = tmp_path_factory.mktemp("pc-dead")
    workers = _scale(request.config, 2000)
    write_hypoprobe_files(before, workers, 10, alive=False)
    write_hypoprobe_files(after, workers, 10, alive=False)
    assert _multiproc.Directory(str(after)).compact(force=True) == workers
    write_prometheus_client_files(theirs, workers, 10)
    return before, after, theirs


@pytest.mark.benchmark(group="multiproc-scrape")
def test_scrape_32x200_hypoprobe(benchmark: Any, live_dirs: tuple[Path, Path]) -> None:
    _scrape_case(benchmark, "32 workers x 200 series, hypoprobe", hypoprobe_scrape(live_dirs[0]), 5)


@pytest.mark.benchmark(group="multiproc-scrape")
def test_scrape_32x200_prometheus_client(benchmark: Any, live_dirs: tuple[Path, Path]) -> None:
    scrape = prometheus_client_scrape(live_dirs[1])
    _scrape_case(benchmark, "32 workers x 200 series, prometheus_client", scrape, 5)


@pytest.mark.benchmark(group="multiproc-scrape")
def test_scrape_2000_dead_hypoprobe_before_compaction(
    benchmark: Any, dead_dirs: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_multiproc, "COMPACT_AT", 10**9)  # measure reading every file
    scrape = hypoprobe_scrape(dead_dirs[0])
    _scrape_case(benchmark, "2000 dead x 10 series, hypoprobe before compaction", scrape, 3)


@pytest.mark.benchmark(group="multiproc-scrape")
def test_scrape_2000_dead_hypoprobe_after_compaction(
    benchmark: Any, dead_dirs: tuple[Path, Path, Path]
) -> None:
    scrape = hypoprobe_scrape(dead_dirs[1])
    _scrape_case(benchmark, "2000 dead x 10 series, hypoprobe after compaction", scrape, 5)


@pytest.mark.benchmark(group="multiproc-scrape")
def test_scrape_2000_dead_prometheus_client(
    benchmark: Any, dead_dirs: tuple[Path, Path, Path]
) -> None:
    scrape = prometheus_client_scrape(dead_dirs[2])
    _scrape_case(benchmark, "2000 dead x 10 series, prometheus_client", scrape, 3)
