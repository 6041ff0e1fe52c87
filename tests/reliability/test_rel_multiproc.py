"""Multi-process mode under attack: full volume, damage, fork mid-compaction, lost directory.

Each attack runs in fresh interpreters (``rel_helpers.run``), so one that kills or wedges
its process fails the test instead of the suite.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from rel_helpers import run, shard_files, tmpfs

from hypoprobe import _multiproc

pytestmark = pytest.mark.reliability

#: A pid above Linux's largest pid_max (2**22): never a live process.
DEAD_PID = 2**22 + 12345

FORK_WORKERS = """
def workers(n, calls):
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            for _ in range(calls):
                with hypoprobe.endpoint("GET /w"):
                    work()
            os._exit(0)
        os.waitpid(pid, 0)
"""


def test_a_full_volume_never_kills_the_app_and_the_fault_is_counted(tmp_path: Path) -> None:
    # A thread that already has a shard file records into new series after the volume
    # filled up: with a sparse mapping, the first store to an unallocated page is SIGBUS.
    with tmpfs(tmp_path / "small", "1m") as directory:
        out = run(
            directory,
            """
            with hypoprobe.endpoint("GET /first"):
                work()
            fd = os.open(os.path.join(os.environ["HYPOPROBE_MULTIPROC_DIR"], "filler"),
                         os.O_WRONLY | os.O_CREAT)
            try:
                while True:
                    os.write(fd, b"x" * 65536)
            except OSError:
                pass
            try:
                while True:
                    os.write(fd, b"x")
            except OSError:
                pass
            os.close(fd)
            for i in range(300):  # 300 new endpoint series: far past the first file's pages
                with hypoprobe.endpoint(f"GET /new/{i}"):
                    work()
            report()
            """,
            expect_ok=False,
        )
        assert out["returncode"] == 0, "the app died (SIGBUS is -7)"
        assert out["calls"] == 301
        assert out["requests"] == 301
        assert out["errors"].get("multiproc_shard", 0) >= 1


def test_a_damaged_archive_never_takes_new_counts_with_it(tmp_path: Path) -> None:
    run(tmp_path, FORK_WORKERS, "workers(10, 80)\nreport()")
    archive = tmp_path / _multiproc.ARCHIVE_NAME
    assert archive.exists()
    raw = bytearray(archive.read_bytes())
    raw[_multiproc.HEADER_SIZE + 12] ^= 0xFF  # inside the first series record: CRC fails
    archive.write_bytes(bytes(raw))
    out = run(
        tmp_path,
        FORK_WORKERS,
        """
        workers(10, 10)
        first = totals()[0]   # reads, finds the archive damaged, compacts the 10 new files
        second = totals()[0]  # reads the new archive
        report(first=first, second=second, files=sorted(os.listdir(os.environ[
            "HYPOPROBE_MULTIPROC_DIR"])))
        """,
    )
    # The damaged archive's 800 are gone (it cannot be trusted); the 100 new ones stay.
    assert out["first"] == out["second"] == out["calls"] == 100
    assert out["errors"] == {"multiproc_corrupt_file": 1}
    assert _multiproc.ARCHIVE_NAME in out["files"]
    assert any(f.startswith("bad-archive") for f in out["files"])
    assert run(tmp_path, "report()")["calls"] == 100


def test_fork_during_compaction_freezes_no_scrape(tmp_path: Path) -> None:
    # The child of a fork made while the exclusive lock was held must not keep it: neither
    # the parent's next scrape nor the child's own first one may wait for the child.
    out = run(
        tmp_path,
        FORK_WORKERS,
        """
        from hypoprobe import _multiproc
        from hypoprobe._storage import STORAGE
        workers(3, 5)
        original = _multiproc.Directory._compact_locked
        child = []
        r, w = os.pipe()

        def compact_and_fork(self, force):
            merged = original(self, force)
            pid = os.fork()  # another thread's fork, as it were, while we hold the lock
            if pid == 0:
                t = threading.Thread(target=lambda: os.write(w, json.dumps(totals()[0]).encode()),
                                     daemon=True)
                t.start()
                t.join(15)
                if t.is_alive():
                    os.write(w, b"-1")
                time.sleep(60)
                os._exit(0)
            child.append(pid)
            return merged

        _multiproc.Directory._compact_locked = compact_and_fork
        STORAGE.directory.compact(force=True)
        _multiproc.Directory._compact_locked = original
        got = []
        t = threading.Thread(target=lambda: got.append(totals()[0]), daemon=True)
        t.start()
        t.join(15)
        child_view = json.loads(os.read(r, 100))
        import signal
        os.kill(child[0], signal.SIGKILL)
        os.waitpid(child[0], 0)
        report(parent=got[0] if got else -1, child=child_view)
        """,
    )
    assert out["parent"] == 15, "the parent's scrape waited for the forked child"
    assert out["child"] == 15, "the forked child's first scrape deadlocked"
    assert out["calls"] == 15


def test_a_directory_deleted_under_a_running_process_breaks_no_scrape(tmp_path: Path) -> None:
    directory = tmp_path / "mp"
    directory.mkdir()
    out = run(
        directory,
        """
        import shutil
        from prometheus_client import generate_latest
        with hypoprobe.endpoint("GET /a"):
            work()
        shutil.rmtree(os.environ["HYPOPROBE_MULTIPROC_DIR"])
        with hypoprobe.endpoint("GET /a"):
            work()
        t = threading.Thread(target=lambda: [work() for _ in range(3)])  # a new shard
        t.start(); t.join()
        text = generate_latest().decode()
        report(metrics="hypoprobe_internal_errors_total" in text)
        """,
    )
    assert out["metrics"] is True
    assert out["errors"].get("multiproc_lock", 0) >= 1
    # This thread's recorded calls lived in unlinked files; the new thread's in memory.
    assert out["calls"] >= 3


def test_a_read_only_directory_without_a_lock_file_is_still_read(tmp_path: Path) -> None:
    # The directory was writable when the process started and turned read-only (a remount)
    # before any scrape created the lock file.
    with tmpfs(tmp_path / "ro", "4m") as directory:
        out = run(
            directory,
            """
            import subprocess
            pid = os.fork()
            if pid == 0:  # a worker records and exits: no file stays mapped for writing
                for _ in range(7):
                    work()
                os._exit(0)
            os.waitpid(pid, 0)
            d = os.environ["HYPOPROBE_MULTIPROC_DIR"]
            assert not os.path.exists(os.path.join(d, ".hypoprobe.lock"))
            subprocess.run(["mount", "-o", "remount,ro", d], check=True)
            first = totals()
            report(first=first[0])
            """,
        )
        assert out["first"] == out["calls"] == 7
        assert out["errors"].get("multiproc_lock", 0) >= 1


def _bogus_shard(directory: Path, records: list[bytes]) -> Path:
    shard = _multiproc.ShardFile(
        str(directory), pid=DEAD_PID, started=1, int_cap=64, float_cap=64, table_cap=4096
    )
    shard.append(records)
    return Path(shard.path)


def test_a_record_with_a_valid_checksum_but_a_string_offset_is_set_aside(tmp_path: Path) -> None:
    run(tmp_path, "for _ in range(9):\n    work()\nprint('{}')")
    bad = _multiproc.Record(("hypoprobe_endpoint_requests", ("x",)), None, "0", 1, 0, 0)  # type: ignore[arg-type]
    odd = _multiproc.Record(("hypoprobe_endpoint_requests", ("y",)), None, 0, True, 0, 0)
    _bogus_shard(tmp_path, [_multiproc.encode_record(bad)])
    _bogus_shard(tmp_path, [_multiproc.encode_record(odd)])
    out = run(tmp_path, "report()")
    assert out["calls"] == 9
    assert out["errors"] == {"multiproc_corrupt_file": 2}
    forced = run(
        tmp_path,
        "from hypoprobe._storage import STORAGE\nSTORAGE.directory.compact(force=True)\nreport()",
    )
    assert forced["calls"] == 9
    assert not [f for f in shard_files(tmp_path) if str(DEAD_PID) in f]
    assert len([f for f in os.listdir(tmp_path) if f.startswith("bad-")]) == 2


@pytest.mark.parametrize("seed", range(3))
def test_random_bytes_in_the_data_region_are_detected_not_reported(
    tmp_path: Path, seed: int
) -> None:
    run(
        tmp_path,
        "for _ in range(50):\n    with hypoprobe.endpoint('GET /r'):\n        work()\nprint('{}')",
    )
    (name,) = shard_files(tmp_path)
    path = tmp_path / name
    parsed, _, _ = _multiproc.read_file(str(path), None, with_data=False)
    (probe,) = [
        r
        for r in parsed.records
        if r.key == ("hypoprobe_probe_duration_seconds", ("REL-1", "work", "GET /r"))
    ]
    raw = bytearray(path.read_bytes())
    at = parsed.int_off + 8 * probe.int_offset
    raw[at : at + 64] = random.Random(seed).randbytes(64)
    path.write_bytes(bytes(raw))
    out = run(tmp_path, "report()")
    assert out["calls"] == 0  # the damaged series is set aside, not 10**18 requests
    assert out["requests"] == 50  # the file's other series still count
    assert out["errors"] == {"multiproc_corrupt_data": 1}
    # compaction does not bake the damage into the archive
    again = run(
        tmp_path,
        "from hypoprobe._storage import STORAGE\nSTORAGE.directory.compact(force=True)\n"
        "report(files=sorted(os.listdir(os.environ['HYPOPROBE_MULTIPROC_DIR'])))",
    )
    assert again["calls"] == 0
    assert again["requests"] == 50
    assert shard_files(tmp_path) == []


def test_inconsistent_moments_are_set_aside(tmp_path: Path) -> None:
    # Within range, but impossible: more requests with a probe call than requests.
    run(
        tmp_path,
        "hypoprobe.hypothesis('REL-1', claim='c', endpoint='GET /m', min_share=0.5)\n"
        "for _ in range(5):\n    with hypoprobe.endpoint('GET /m'):\n        work()\n"
        "print('{}')",
    )
    (name,) = shard_files(tmp_path)
    path = tmp_path / name
    parsed, _, _ = _multiproc.read_file(str(path), None, with_data=False)
    (moments,) = [
        r for r in parsed.records if r.key[0] == "hypoprobe_moments" and r.key[1][3] == "false"
    ]
    raw = bytearray(path.read_bytes())
    at = parsed.int_off + 8 * (moments.int_offset + 1)
    raw[at : at + 8] = (7).to_bytes(8, "little")  # 7 with a probe call out of 5
    path.write_bytes(bytes(raw))
    out = run(
        tmp_path,
        "snap = hypoprobe.snapshot()\n"
        "report(moments=[m.requests for m in snap.moments if m.hypothesis == 'REL-1'])",
    )
    assert out["calls"] == out["requests"] == 5  # the other series of the file count
    assert 5 not in out["moments"]  # the damaged moments are not reported
    assert out["errors"] == {"multiproc_corrupt_data": 1}


def test_a_leftover_temporary_archive_is_removed_at_the_next_compaction(tmp_path: Path) -> None:
    leftover = tmp_path / f"{_multiproc.TMP_PREFIX}archive-{DEAD_PID}{_multiproc.SUFFIX}"
    leftover.write_bytes(b"\0" * 10000)  # a compaction that crashed before its rename
    out = run(
        tmp_path,
        FORK_WORKERS,
        "workers(9, 2)\ntotals()\nreport(files=os.listdir(os.environ['HYPOPROBE_MULTIPROC_DIR']))",
    )
    assert out["calls"] == 18
    assert leftover.name not in out["files"]
    assert sorted(out["files"]) == [".hypoprobe.lock", "archive.hp"]
