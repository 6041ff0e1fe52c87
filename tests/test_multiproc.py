"""Multi-process mode: every process of a host reports all of them, with nothing lost.

Each test runs its recording in fresh Python processes (the test process's own storage
stays in single-process mode), with ``HYPOPROBE_MULTIPROC_DIR`` pointing at a temporary
directory. Probes run on a clock that advances exactly 1,000 ns per reading, so each call
records exactly 1 us and sums are exact multiples of the call count.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import hypoprobe
from hypoprobe._core import _multiproc

PRELUDE = """
import itertools, json, os, sys, threading, time
import hypoprobe

_ticks = itertools.count(0, 1000)
hypoprobe.configure(clock=lambda: next(_ticks))

@hypoprobe.probe("MP-1", name="work")
def work():
    pass

def calls():
    snap = hypoprobe.snapshot()
    found = [p for p in snap.probes if p.probe == "work"]
    return (found[0].duration.count, found[0].duration.sum) if found else (0, 0.0)

def report(**extra):
    count, total = calls()
    print(json.dumps({"count": count, "sum": total, "errors": hypoprobe.snapshot().internal_errors,
                      **extra}), flush=True)
"""


def run(directory: Path, body: str, timeout: float = 30.0) -> dict[str, Any]:
    """Run PRELUDE + body in a new interpreter in multi-process mode; parse its last line."""
    env = {**os.environ, "HYPOPROBE_MULTIPROC_DIR": str(directory)}
    code = PRELUDE + textwrap.dedent(body)
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def shard_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("shard-"))


def test_every_process_reports_the_whole_host_after_fork(tmp_path: Path) -> None:
    out = run(
        tmp_path,
        """
        for _ in range(7):
            work()  # the parent records before forking: the children must not count it
        pids = []
        for i in range(3):
            pid = os.fork()
            if pid == 0:
                for _ in range(100 * (i + 1)):
                    work()
                os._exit(0)
            pids.append(pid)
        for pid in pids:
            os.waitpid(pid, 0)
        # a child that records nothing and reports: it sees the host, not a copy of the parent
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.write(w, json.dumps(calls()).encode())
            os._exit(0)
        os.waitpid(pid, 0)
        child_view = json.loads(os.read(r, 1000))
        report(child_view=child_view)
        """,
    )
    assert out["count"] == 7 + 100 + 200 + 300
    assert out["sum"] == pytest.approx(607 * 1e-6)
    assert out["child_view"][0] == 607
    assert out["errors"] == {}


def test_a_worker_killed_with_sigkill_keeps_every_count(tmp_path: Path) -> None:
    out = run(
        tmp_path,
        """
        import signal
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            for _ in range(1234):
                work()
            os.write(w, b"x")
            time.sleep(60)
            os._exit(0)
        os.read(r, 1)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        report()
        """,
    )
    assert out["count"] == 1234
    assert out["sum"] == pytest.approx(1234e-6)


def test_sigkill_mid_traffic_leaves_consistent_counts(tmp_path: Path) -> None:
    # Killed at an arbitrary instant: every completed call is there; at most the one call in
    # flight has its bucket count without its sum (the sum is written second).
    out = run(
        tmp_path,
        """
        import signal
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            work()
            os.write(w, b"x")
            while True:
                work()
        os.read(r, 1)
        time.sleep(0.3)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        report()
        """,
    )
    completed = round(out["sum"] / 1e-6)
    assert out["count"] > 1000
    assert out["count"] - completed in (0, 1)


def test_threads_each_record_into_their_own_file_and_exit_cleanly(tmp_path: Path) -> None:
    out = run(
        tmp_path,
        """
        def worker(n):
            for _ in range(n):
                work()
        threads = [threading.Thread(target=worker, args=(50 * (i + 1),)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        report(files=len([n for n in os.listdir(os.environ["HYPOPROBE_MULTIPROC_DIR"])
                          if n.startswith("shard-")]))
        """,
    )
    assert out["count"] == 50 + 100 + 150 + 200
    assert out["files"] == 4  # the main thread never recorded


def test_compaction_bounds_the_directory_and_keeps_exact_counts(tmp_path: Path) -> None:
    out = run(
        tmp_path,
        """
        for i in range(40):  # 40 recycled workers, each records i + 1 calls and exits
            pid = os.fork()
            if pid == 0:
                for _ in range(i + 1):
                    work()
                os._exit(0)
            os.waitpid(pid, 0)
        first = calls()      # reads 40 files, then compacts them into the archive
        second = calls()     # reads the archive only
        report(first=first, second=second,
               files=sorted(os.listdir(os.environ["HYPOPROBE_MULTIPROC_DIR"])))
        """,
    )
    total = sum(range(1, 41))
    assert out["first"][0] == total
    assert out["second"][0] == total
    assert out["count"] == total
    assert out["files"] == [".hypoprobe.lock", "archive.hp"]
    # and again, with more dead workers on top of the archive
    out = run(
        tmp_path,
        """
        for i in range(10):
            pid = os.fork()
            if pid == 0:
                work()
                os._exit(0)
            os.waitpid(pid, 0)
        report(files=sorted(os.listdir(os.environ["HYPOPROBE_MULTIPROC_DIR"])))
        """,
    )
    assert out["count"] == total + 10


def test_a_recycled_pid_does_not_make_a_dead_file_look_alive(tmp_path: Path) -> None:
    run(tmp_path, "work(); work(); work()\nreport()")
    (dead,) = shard_files(tmp_path)
    pid, started = _multiproc.parse_owner(dead) or (0, 0)
    assert not _multiproc.is_alive(pid, started)
    # The same file as if owned by a live process (ours) that started at another time.
    ours = os.getpid()
    reused = f"shard-{ours}-{_multiproc.start_time(ours) + 1}-{'ab' * 16}.hp"
    os.rename(tmp_path / dead, tmp_path / reused)
    assert _multiproc.is_alive(ours, _multiproc.start_time(ours))
    assert not _multiproc.is_alive(ours, _multiproc.start_time(ours) + 1)
    directory = _multiproc.Directory(str(tmp_path))
    assert directory.compactable() == [reused]
    assert directory.compact(force=True) == 1
    assert shard_files(tmp_path) == []
    assert run(tmp_path, "report()")["count"] == 3


def test_an_interrupted_compaction_never_double_counts(tmp_path: Path) -> None:
    # Crash after the new archive was renamed into place but before the merged files were
    # unlinked: the archive lists them as absorbed, so readers skip them.
    run(tmp_path, "for _ in range(5): work()\nreport()")
    (name,) = shard_files(tmp_path)
    saved = tmp_path.parent / "saved.hp"
    shutil.copy(tmp_path / name, saved)
    assert _multiproc.Directory(str(tmp_path)).compact(force=True) == 1
    shutil.copy(saved, tmp_path / name)  # "not yet unlinked"
    assert run(tmp_path, "report()")["count"] == 5
    assert _multiproc.Directory(str(tmp_path)).compact(force=True) == 0
    assert shard_files(tmp_path) == []  # the leftover was removed, not merged again
    assert run(tmp_path, "report()")["count"] == 5


def test_corrupt_and_truncated_files_are_skipped_and_counted(tmp_path: Path) -> None:
    run(tmp_path, "for _ in range(9): work()\nreport()")
    (good,) = shard_files(tmp_path)
    raw = (tmp_path / good).read_bytes()
    # garbage, a truncated copy, and a copy whose series table was damaged
    (tmp_path / f"shard-1-1-{'00' * 16}.hp").write_bytes(b"not a shard file at all")
    (tmp_path / f"shard-2-2-{'11' * 16}.hp").write_bytes(raw[:5000])
    damaged = bytearray(raw)
    damaged[_multiproc.HEADER_SIZE + 12] ^= 0xFF
    (tmp_path / f"shard-3-3-{'22' * 16}.hp").write_bytes(bytes(damaged))
    out = run(tmp_path, "report()")
    assert out["count"] == 9
    assert out["errors"] == {"multiproc_corrupt_file": 3}


def test_header_checksum_detects_a_flipped_byte(tmp_path: Path) -> None:
    run(tmp_path, "work()\nreport()")
    (good,) = shard_files(tmp_path)
    raw = bytearray((tmp_path / good).read_bytes())
    raw[20] ^= 0x01  # inside the pid field
    (tmp_path / good).write_bytes(bytes(raw))
    out = run(tmp_path, "report()")
    assert out["count"] == 0
    assert out["errors"] == {"multiproc_corrupt_file": 1}


def test_a_process_that_outgrows_its_file_continues_in_a_new_one(tmp_path: Path) -> None:
    # Every endpoint adds a 516-slot series; 200 of them overflow the first file's slots.
    out = run(
        tmp_path,
        """
        hypoprobe.configure(max_series=5000)
        for i in range(200):
            with hypoprobe.probe("MP-1", name="work"):
                pass
            @hypoprobe.probe("MP-1", name=f"other{i}")
            def other():
                pass
            other()
        report(files=len([n for n in os.listdir(os.environ["HYPOPROBE_MULTIPROC_DIR"])
                          if n.startswith("shard-")]))
        """,
    )
    assert out["count"] == 200
    assert out["files"] >= 2


def test_multiproc_dir_must_be_an_existing_directory(tmp_path: Path) -> None:
    with pytest.raises(hypoprobe.ConfigurationError, match="multiproc_dir"):
        hypoprobe.configure(multiproc_dir=str(tmp_path / "missing"))
    with pytest.raises(hypoprobe.ConfigurationError, match="multiproc_dir"):
        hypoprobe.configure(multiproc_dir=42)


def test_a_bad_environment_value_warns_and_falls_back(tmp_path: Path) -> None:
    from hypoprobe._config import from_environment

    config = from_environment({"HYPOPROBE_MULTIPROC_DIR": str(tmp_path / "missing")})
    assert config.multiproc_dir is None
    config = from_environment({"HYPOPROBE_MULTIPROC_DIR": str(tmp_path)})
    assert config.multiproc_dir == str(tmp_path)


def test_sigkilled_gunicorn_style_worker_files_are_read_by_the_next_worker(
    tmp_path: Path,
) -> None:
    # A worker started as its own process (no fork from a recording parent), killed, then
    # another worker reads the host: the dead worker's counts are there.
    env = {**os.environ, "HYPOPROBE_MULTIPROC_DIR": str(tmp_path)}
    code = PRELUDE + "for _ in range(321): work()\nprint('ready', flush=True)\ntime.sleep(60)\n"
    with subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    deadline = time.monotonic() + 5
    while _multiproc.is_alive(proc.pid, 0) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert run(tmp_path, "report()")["count"] == 321


@pytest.mark.parametrize("seed", range(5))
def test_sums_by_key_equal_a_naive_sum(seed: int) -> None:
    # Sparse histograms (empty, first bucket only, last bucket only, scattered) and narrow
    # series, at offsets that differ between files, summed by key.
    import random
    import struct as st

    rng = random.Random(seed)
    width = 40
    keys = [(f"m{i}", (str(i),)) for i in range(6)]
    expected = {key: [0] * width for key in keys}
    totals = _multiproc.Totals()
    for _ in range(4):
        order = rng.sample(keys, len(keys))
        records, slots = [], []
        for n, key in enumerate(order):
            values = [0] * width
            shape = rng.choice(["empty", "first", "last", "scattered", "full"])
            if shape == "first":
                values[0] = rng.randint(1, 9)
            elif shape == "last":
                values[width - 2] = rng.randint(1, 9)
            elif shape == "scattered":
                for i in rng.sample(range(width - 1), 5):
                    values[i] = rng.randint(1, 2**40)
            elif shape == "full":
                values = [rng.randint(0, 3) for _ in range(width)]
            values[-1] = rng.randint(0, 2**62)
            records.append(_multiproc.Record(key, "duration_ns", n * width, width, 0, 0))
            slots.extend(values)
            expected[key] = [a + b for a, b in zip(expected[key], values, strict=True)]
        narrow = ("narrow", ("x",))
        records.append(_multiproc.Record(narrow, None, len(slots), 3, 0, 0))
        slots.extend([1, 2, 3])
        expected.setdefault(narrow, [0, 0, 0])
        expected[narrow] = [a + b for a, b in zip(expected[narrow], [1, 2, 3], strict=True)]
        assert totals.add(records, st.pack(f"<{len(slots)}q", *slots), b"")
    for key, want in expected.items():
        _, offset, w, _, _ = totals.index[key]
        assert totals.ints[offset : offset + w] == want, key


def test_scrapes_during_worker_churn_and_compaction_never_go_backwards(tmp_path: Path) -> None:
    # Workers record and exit while the parent collects over and over (compacting as dead
    # files pile up): every collection is a consistent total, never lower than the one
    # before and never above what was recorded.
    out = run(
        tmp_path,
        """
        seen = []
        pids = []
        for i in range(24):
            pid = os.fork()
            if pid == 0:
                for _ in range(200):
                    work()
                os._exit(0)
            pids.append(pid)
            seen.append(calls()[0])
        for pid in pids:
            os.waitpid(pid, 0)
        for _ in range(3):
            seen.append(calls()[0])
        report(seen=seen, files=sorted(os.listdir(os.environ["HYPOPROBE_MULTIPROC_DIR"])))
        """,
        timeout=60,
    )
    seen = out["seen"]
    assert seen == sorted(seen)
    assert max(seen) <= 24 * 200
    assert seen[-1] == out["count"] == 24 * 200
    assert "archive.hp" in out["files"]
    assert len([f for f in out["files"] if f.startswith("shard-")]) < 8


def _float_total(directory: _multiproc.Directory, key: _multiproc.Key) -> float:
    """The host's total of ``key``'s float, folded as every worker's collection folds it."""
    totals = _multiproc.Totals()
    for _, records, ints, floats in directory.sources(with_data=True):
        totals.add(records, ints, floats)
    return totals.floats[totals.index[key][3]]


def test_compaction_never_steps_a_float_total_back(tmp_path: Path) -> None:
    # Readers fold the archive, then the shard files in name order. Merging a dead file that
    # sorts after two live ones into the archive regroups the additions: (a + b) + d is an
    # ulp above (d + a) + b and (d + b) + a. Any worker may answer the next scrape, so the
    # archive itself must not lose that ulp, or Prometheus sees a counter reset.
    key: _multiproc.Key = ("hypoprobe_hypothesis_moments", ("H", "GET /", "false"))
    ours = os.getpid()
    files = []

    def shard(pid: int, started: int, value: float) -> memoryview[float]:
        file = _multiproc.ShardFile(
            str(tmp_path), pid=pid, started=started, int_cap=8, float_cap=8, table_cap=4096
        )
        file.append([_multiproc.encode_record(_multiproc.Record(key, None, 0, 2, 0, 1))])
        ints, floats = file.views(2, 1)
        ints[0], ints[1] = 1, 1
        floats[0] = value
        files.append(file)
        return floats

    a, b, d = 1.678, 2.421, 0.216
    live = [shard(ours, _multiproc.start_time(ours), v) for v in (a, b)]
    shard(999_999_999, 1, d)  # a dead pid, and its name sorts after ours
    assert (d + a) + b < (a + b) + d
    assert (d + b) + a < (a + b) + d
    directory = _multiproc.Directory(str(tmp_path))
    before = _float_total(directory, key)
    assert before == (a + b) + d
    assert directory.compact(force=True) == 1
    assert "archive.hp" in os.listdir(tmp_path)
    after = _float_total(directory, key)
    assert before <= after <= before * (1 + 1e-15)
    assert _float_total(_multiproc.Directory(str(tmp_path)), key) == after  # another worker
    live[0][0] += 1.0  # and later counts add on top
    assert _float_total(directory, key) >= after + 1.0 - 1e-12
