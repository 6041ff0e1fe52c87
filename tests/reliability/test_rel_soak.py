"""A bounded soak: 4 gunicorn workers recycled by ``max_requests``, steady load and scrapes.

What must hold for the whole run: every scrape answers, the host's request count never
goes backwards and never exceeds what was sent, the directory stays small (dead workers'
files are compacted), the workers' memory stays flat; and at the end the count is exact.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from servers import free_port

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

HERE = Path(__file__).parent
#: Seconds of load; the whole test stays well under two minutes on two busy cores.
DURATION = float(os.environ.get("HYPOPROBE_SOAK_SECONDS", "45"))
WORKERS = 4
MAX_REQUESTS = 150
_COUNT = re.compile(
    r'^hypoprobe_endpoint_duration_seconds_count\{endpoint="GET /soak"\} (\S+)$', re.M
)
_CALLS = re.compile(
    r'^hypoprobe_probe_duration_seconds_count\{[^}]*endpoint="GET /soak"[^}]*\} (\S+)$', re.M
)
_ERRORS = re.compile(r"^hypoprobe_internal_errors_total\{[^}]*\} (\S+)$", re.M)


def _get(port: int, path: str, timeout: float = 10.0) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read().decode()
        if response.status != 200:
            raise OSError(f"{path}: HTTP {response.status}")
        return body
    finally:
        conn.close()


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry))
    return out


def _rss_kb(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_soak_recycled_workers_exact_counts_flat_memory_small_directory(tmp_path: Path) -> None:
    directory = tmp_path / "multiproc"
    directory.mkdir()
    port = free_port()
    log = tmp_path / "gunicorn.log"
    env = {**os.environ, "HYPOPROBE_MULTIPROC_DIR": str(directory)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with log.open("wb") as out:
        master = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn", "--no-control-socket",
                "--bind", f"127.0.0.1:{port}", "--workers", str(WORKERS),
                "--max-requests", str(MAX_REQUESTS), "--preload",
                "--chdir", str(HERE), "soak_app:app",
            ],
            env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
        )  # fmt: skip
    seen_workers: set[int] = set()
    try:
        deadline = time.monotonic() + 30
        while True:
            assert master.poll() is None, log.read_text()[-3000:]
            with contextlib.suppress(OSError):
                _get(port, "/metrics", timeout=2)
                if len(_children(master.pid)) == WORKERS:
                    break
            assert time.monotonic() < deadline, "gunicorn did not come up"
            time.sleep(0.1)

        sent = [0]
        ok = [0]
        failed = [0]
        stop = threading.Event()
        lock = threading.Lock()

        def load() -> None:
            while not stop.is_set():
                with lock:
                    sent[0] += 1
                try:
                    _get(port, "/soak")
                except OSError:
                    with lock:
                        failed[0] += 1
                else:
                    with lock:
                        ok[0] += 1

        scrapes: list[tuple[float, int]] = []  # (count, requests sent when it was answered)
        files: list[int] = []
        rss: list[int] = []
        problems: list[str] = []

        def scrape() -> None:
            while not stop.is_set():
                try:
                    text = _get(port, "/metrics")
                except OSError as exc:
                    problems.append(f"scrape failed: {exc}")
                else:
                    found = _COUNT.search(text)
                    count = float(found.group(1)) if found else 0.0
                    with lock:
                        issued_after = sent[0]
                    scrapes.append((count, issued_after))
                    if _ERRORS.search(text):
                        problems.append("internal errors: " + ", ".join(_ERRORS.findall(text)))
                files.append(len(os.listdir(directory)))
                workers = _children(master.pid)
                seen_workers.update(workers)
                rss.append(sum(_rss_kb(pid) for pid in workers) // max(1, len(workers)))
                stop.wait(0.5)

        threads = [threading.Thread(target=load) for _ in range(2)]
        threads.append(threading.Thread(target=scrape))
        for t in threads:
            t.start()
        time.sleep(DURATION)
        stop.set()
        for t in threads:
            t.join(30)

        final = _get(port, "/metrics")
        count = float(_COUNT.findall(final)[0])
        calls = float(_CALLS.findall(final)[0])
        print(  # the figures docs/operations.md quotes (pytest -s shows them)
            f"soak: {DURATION:.0f} s, {ok[0]} requests, {len(scrapes)} scrapes, "
            f"{len(seen_workers)} workers seen, files max {max(files)}, "
            f"worker RSS early {rss[0] if rss else 0} kB late {rss[-1] if rss else 0} kB"
        )
        assert not problems, problems[:5]
        assert failed[0] == 0
        # exact: every answered request counted once, whichever worker served or died since
        assert count == calls == ok[0]
        assert ok[0] > 4 * WORKERS * MAX_REQUESTS, "too little traffic to recycle workers"
        assert len(seen_workers) > 2 * WORKERS, "workers were not recycled"
        counts = [c for c, _ in scrapes]
        assert counts == sorted(counts), "a scrape went backwards"
        assert all(c <= issued for c, issued in scrapes)
        # the directory holds the archive, the lock, live files and < 8 dead ones (+ slack
        # for the workers recycled between two scrapes)
        assert max(files) <= 2 + WORKERS + 8 + 6, files
        # memory: each worker is young (recycled), and the newest are no bigger than the first
        third = max(1, len(rss) // 3)
        early = sorted(rss[:third])[third // 2]
        late = sorted(rss[-third:])[third // 2]
        assert late <= early * 1.25 + 2048, (early, late)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(master.pid, signal.SIGTERM)
        try:
            master.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(master.pid, signal.SIGKILL)
            master.wait(timeout=5)
        for pid in seen_workers:
            with contextlib.suppress(ProcessLookupError):
                if Path(f"/proc/{pid}/stat").exists():
                    os.kill(pid, signal.SIGKILL)
