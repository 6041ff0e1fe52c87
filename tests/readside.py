"""Shared by the read-side reliability tests (tests/reliability/): a recorded snapshot
document to mutate, hostile HTTP servers on 127.0.0.1 (trickling, silent, fixed answers),
and the CLI run in-process. It lives beside servers.py so that it imports the same way
whether or not tests/reliability/ is a package.

Every server listens on 127.0.0.1, port 0, in daemon threads, and is closed by its context
manager; nothing here uses a fixed port.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import hypoprobe
import scenarios
from hypoprobe.cli import EXIT_NO_DATA, EXIT_OK, EXIT_SOURCE, EXIT_UNMEASURED, EXIT_USAGE, main

#: Every exit code a command may end with (docs/cli.md); 1 is a bug.
DOCUMENTED_EXITS = (EXIT_OK, EXIT_USAGE, EXIT_SOURCE, EXIT_NO_DATA, EXIT_UNMEASURED)

_DOC: dict[str, Any] | None = None


def recorded_document() -> dict[str, Any]:
    """A real snapshot document (seed story: 600 requests, slowest requests, exemplar-free),
    recorded once per test session under its own hypothesis id."""
    global _DOC
    if _DOC is None:
        before = hypoprobe.snapshot()
        scenarios.run(scenarios.seed_story(5, 600), "REL-READ", "GET /reliability")
        _DOC = hypoprobe.snapshot().minus(before).to_dict()
        # The slowest list covers the whole process; keep this story's only.
        _DOC["slowest"] = [r for r in _DOC["slowest"] if r["hypothesis"] == "REL-READ"]
        _DOC["hypotheses"] = [h for h in _DOC["hypotheses"] if h["id"] == "REL-READ"]
    copy: dict[str, Any] = json.loads(json.dumps(_DOC))
    return copy


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def assert_clean(self, *codes: int) -> str:
        """Exit code among ``codes`` (default: the documented ones), no traceback, and on
        failure one error line on stderr (argparse's own usage errors: usage, then one error
        line), after any warning lines."""
        allowed = codes or DOCUMENTED_EXITS
        assert self.code in allowed, (self.code, self.err)
        assert "Traceback" not in self.err, self.err
        assert "internal error" not in self.err, self.err
        if self.code == EXIT_OK:
            return ""
        # Warnings (``hypoprobe: warning: ...``) come before the error, each on its own line.
        lines = [
            line
            for line in self.err.strip().splitlines()
            if not line.startswith("hypoprobe: warning: ")
        ]
        for line in self.err.splitlines():
            assert "\x1b" not in line, self.err
        if lines and lines[0].startswith("usage:"):
            assert self.code == EXIT_USAGE, self.err
            assert ": error: " in lines[-1], self.err
            return lines[-1]
        assert len(lines) == 1, self.err
        assert lines[0].startswith("hypoprobe: "), self.err
        return lines[0]


def run_cli(*argv: str) -> CliResult:
    """``hypoprobe.cli.main(argv)`` in-process, stdout and stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return CliResult(code, out.getvalue(), err.getvalue())


@dataclass
class Server:
    """A raw TCP server on 127.0.0.1 whose connections are handled by ``handle(conn)``."""

    handle: Callable[[socket.socket, threading.Event], None]
    #: Hand the connection over as it is, without reading an HTTP request first (TLS).
    raw: bool = False
    stop: threading.Event = field(default_factory=threading.Event)
    connections: list[socket.socket] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            conn.settimeout(5.0)
            if not self.raw:
                read_request(conn)
            self.handle(conn, self.stop)

    def close(self) -> None:
        self.stop.set()
        self._thread.join(5)
        self.sock.close()
        for conn in self.connections:
            with contextlib.suppress(OSError):
                conn.close()


def read_request(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return
        data += chunk


@contextlib.contextmanager
def serving(
    handle: Callable[[socket.socket, threading.Event], None], *, raw: bool = False
) -> Iterator[Server]:
    server = Server(handle, raw)
    try:
        yield server
    finally:
        server.close()


def trickle(body: bytes, *, headers_first: bool, interval: float = 0.25) -> Callable[..., None]:
    """Answer with ``body`` one byte every ``interval`` s: from the status line on, or after
    complete headers (``headers_first``), forever if the body is long enough."""
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
        + b"Content-Length: %d\r\n\r\n" % len(body)
    )

    def handle(conn: socket.socket, stop: threading.Event) -> None:
        payload = body
        if headers_first:
            conn.sendall(head)
        else:
            payload = head + body
        for i in range(len(payload)):
            if stop.wait(interval):
                return
            conn.sendall(payload[i : i + 1])

    return handle


def silent(conn: socket.socket, stop: threading.Event) -> None:
    """Read the request, then never answer."""
    stop.wait(120)


def fixed_json(doc: Any) -> Callable[..., None]:
    """Answer every request at once with ``doc`` as JSON."""
    body = json.dumps(doc).encode()

    def handle(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
            + body
        )

    return handle


def elapsed(fn: Callable[[], object]) -> tuple[float, object]:
    """(seconds taken, result or the exception raised) of ``fn()``."""
    start = time.monotonic()
    try:
        result: object = fn()
    except Exception as exc:
        result = exc
    return time.monotonic() - start, result
