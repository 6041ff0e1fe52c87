"""Every network read has an overall deadline, and Ctrl-C does not wait for the requests in
flight. Against local servers on 127.0.0.1 that trickle a byte at a time or never answer.

The bounds asserted are liveness bounds, several times the deadline, not performance
figures: before the fix these reads took minutes (a trickle holds a per-read timeout
forever) or twice the timeout (a silent Prometheus, queries queued behind each other).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hypoprobe.sources import (
    EXIT_NO_DATA,
    EXIT_UNREACHABLE,
    SourceError,
    query_prometheus,
    scrape_metrics,
)
from readside import elapsed, read_request, serving, silent, trickle
from servers import need_component

#: A /metrics body long enough to trickle for minutes at 4 bytes a second.
_BODY = b"# HELP hypoprobe_x x\n" * 200

#: Liveness bound past the deadline, for a busy machine (the old behaviour overshot by
#: minutes, or by several times the deadline).
_SLACK = 4.0


def _assert_deadline(
    seconds: float, result: object, deadline: float, slack: float = _SLACK
) -> None:
    assert isinstance(result, SourceError), result
    assert result.exit_code == EXIT_UNREACHABLE
    assert f"within {deadline:g} s" in str(result)
    assert seconds < deadline + slack, seconds


@pytest.mark.parametrize("headers_first", [False, True], ids=["in the headers", "in the body"])
def test_a_trickling_metrics_endpoint_is_cut_off_at_the_deadline(headers_first: bool) -> None:
    with serving(trickle(_BODY, headers_first=headers_first)) as server:
        took, result = elapsed(lambda: scrape_metrics([f"{server.url}/metrics"], timeout=1.0))
    _assert_deadline(took, result, 1.0)


def test_several_trickling_targets_share_one_deadline() -> None:
    with (
        serving(trickle(_BODY, headers_first=True)) as a,
        serving(trickle(_BODY, headers_first=False)) as b,
    ):
        took, result = elapsed(
            lambda: scrape_metrics([f"{a.url}/metrics", f"{b.url}/metrics"], timeout=1.0)
        )
    _assert_deadline(took, result, 1.0)


def test_a_silent_prometheus_is_cut_off_at_the_overall_timeout() -> None:
    # ~25 queries, 4 at a time, each with its own timeout: the first timed out after one
    # timeout, then the three others in flight were awaited, timing out too: twice the timeout.
    with serving(silent) as server:
        took, result = elapsed(lambda: query_prometheus(server.url, 60.0, timeout=3.0))
    _assert_deadline(took, result, 3.0, slack=2.0)


def test_a_trickling_prometheus_is_cut_off_at_the_overall_timeout() -> None:
    with serving(trickle(b'{"status": "success", "data": {}}' * 50, headers_first=True)) as s:
        took, result = elapsed(lambda: query_prometheus(s.url, 60.0, timeout=1.0))
    _assert_deadline(took, result, 1.0)


_INTERRUPTED = """
import sys
from hypoprobe.cli import main
print("started", flush=True)
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("source", ["metrics", "prometheus", "metrics over TLS"])
def test_ctrl_c_with_several_targets_stops_at_once(source: str) -> None:
    # Over TLS the servers never answer the ClientHello: the requests wait in the handshake.
    tls = source == "metrics over TLS"
    with (
        serving(silent, raw=tls) as a,
        serving(silent, raw=tls) as b,
        serving(silent, raw=tls) as c,
    ):
        if source == "prometheus":
            argv = ["report", "--prometheus", a.url, "--window", "1h"]
        else:
            urls = [f"127.0.0.1:{server.port}" for server in (a, b, c)]
            argv = [
                "report",
                "--metrics-url",
                *(f"{'https' if tls else 'http'}://{u}" for u in urls),
            ]
        proc = subprocess.Popen(
            [sys.executable, "-c", _INTERRUPTED, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "started\n"
            # Interrupt once the requests are in flight (the silent servers hold them); an
            # interrupt while a loaded machine is still importing is another test's.
            queried = [a] if source == "prometheus" else [a, b, c]
            deadline = time.monotonic() + 30
            while not all(server.connections for server in queried):
                assert time.monotonic() < deadline, "the requests never reached the servers"
                assert proc.poll() is None, proc.communicate()
                time.sleep(0.02)
            time.sleep(0.2)  # the request written, the client waiting for the answer
            proc.send_signal(signal.SIGINT)
            start = time.monotonic()
            _, err = proc.communicate(timeout=60)
            took = time.monotonic() - start
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 130, err
    assert err.strip() == "hypoprobe: interrupted"
    # The CLI's timeouts are 10 s (scrape) and 30 s (Prometheus): Ctrl-C must not wait.
    assert took < 5.0, took


def _tls_trickle(conn: socket.socket, stop: threading.Event) -> None:
    """Answer a ClientHello with the start of a 16 KiB handshake record, a byte at a time."""
    conn.recv(4096)
    for byte in b"\x16\x03\x03\x40\x00" + b"\x02" * 16384:
        if stop.wait(0.25):
            return
        conn.sendall(bytes([byte]))


def test_a_trickling_tls_handshake_is_cut_off_at_the_deadline() -> None:
    with serving(_tls_trickle, raw=True) as server:
        url = f"https://127.0.0.1:{server.port}/metrics"
        took, result = elapsed(lambda: scrape_metrics([url], timeout=1.0))
    _assert_deadline(took, result, 1.0)


@pytest.fixture
def trusted_certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """A self-signed certificate for 127.0.0.1, trusted through SSL_CERT_FILE; the server's
    TLS context."""
    openssl = shutil.which("openssl")
    need_component(
        "openssl", openssl is not None, "install openssl (Debian: apt-get install openssl)"
    )
    assert openssl is not None
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def test_https_sources_complete_the_handshake_under_the_deadline(
    trusted_certificate: ssl.SSLContext,
) -> None:
    def metrics_over_tls(conn: socket.socket, stop: threading.Event) -> None:
        with trusted_certificate.wrap_socket(conn, server_side=True) as tls:
            read_request(tls)
            body = b"# TYPE other_total counter\nother_total 1\n"
            tls.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
                + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
                + body
            )

    with serving(metrics_over_tls, raw=True) as server:
        url = f"https://127.0.0.1:{server.port}/metrics"
        with pytest.raises(SourceError) as exc:
            scrape_metrics([url], timeout=10.0)
    # The whole answer came over TLS and was parsed: it just is not hypoprobe's.
    assert exc.value.exit_code == EXIT_NO_DATA
    assert "serves no hypoprobe metrics" in str(exc.value)
