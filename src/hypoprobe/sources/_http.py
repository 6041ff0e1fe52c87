"""One HTTP GET with the stdlib, turning every way of not getting an answer into SourceError.

A socket timeout bounds each read, not the request: a server that trickles a byte every few
seconds would hold a read forever. Every request therefore runs under a :class:`Deadline`,
an overall limit that, when it passes (or when the user presses Ctrl-C), shuts down every
socket still open for it, whatever phase the request is in (connecting, headers, body).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from ._errors import EXIT_UNREACHABLE, EXIT_USAGE, SourceError

__all__: list[str] = []

#: Answers larger than this are refused, so a wrong URL cannot exhaust memory.
MAX_BODY_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Response:
    """Whatever the server answered, HTTP errors included (their body can say why)."""

    url: str
    status: int
    content_type: str
    body: bytes

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def normalise_url(url: str, default_path: str = "") -> str:
    """Add ``http://`` when no scheme was given, and ``default_path`` when no path was.

    Example: ``normalise_url("127.0.0.1:9100", "/metrics")`` is
    ``"http://127.0.0.1:9100/metrics"``.
    """
    text = str(url).strip()
    if not text:
        raise SourceError("an empty URL was given: pass http://HOST:PORT[/path]", EXIT_USAGE)
    if "://" not in text:
        text = f"http://{text}"
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not 0-65535
    except ValueError as exc:  # "Invalid IPv6 URL", "Port out of range 0-65535"...
        raise SourceError(
            f"{url!r} is not a usable URL ({exc}): pass http://HOST:PORT[/path]", EXIT_USAGE
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SourceError(
            f"{url!r} is not an http(s) URL: pass http://HOST:PORT[/path]", EXIT_USAGE
        )
    if default_path and parts.path in ("", "/"):
        parts = parts._replace(path=default_path)
    return urllib.parse.urlunsplit(parts)


class Deadline:
    """An overall time limit shared by requests; at its end, or on :meth:`abort`, their
    sockets are shut down, so a blocked connect or read returns at once.

    Example::

        with Deadline(10.0) as deadline:
            resp = get("http://127.0.0.1:9100/metrics", timeout=10.0, accept="text/plain",
                       deadline=deadline)
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._aborted = False
        self._timer = threading.Timer(max(0.0, seconds), self.abort)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None and not issubclass(exc_type, Exception):
            self.abort()  # KeyboardInterrupt: requests in other threads stop now, not later
        self._timer.cancel()

    @property
    def expired(self) -> bool:
        """True once the limit passed or the requests were aborted."""
        return self._aborted or time.monotonic() >= self._end

    def remaining(self) -> float:
        return max(0.0, self._end - time.monotonic())

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock`` down when the deadline ends (at once if it already has)."""
        with self._lock:
            self._sockets.append(sock)
            aborted = self._aborted
        if aborted:
            _shutdown(sock)

    def abort(self) -> None:
        """End the deadline now: every watched socket is shut down."""
        with self._lock:
            self._aborted = True
            watched, self._sockets = self._sockets, []
        for sock in watched:
            _shutdown(sock)


_K = TypeVar("_K")
_T = TypeVar("_T")


def concurrently(
    calls: Sequence[tuple[_K, Callable[[Deadline], _T]]],
    *,
    timeout: float,
    workers: int,
    each: Callable[[_K, _T, int], None],
) -> None:
    """Run each ``(key, call)`` in ``workers`` threads, all under one :class:`Deadline` of
    ``timeout`` s; ``each(key, result, done)`` runs here as each call completes (``done``:
    how many have, so far).

    The first error, a call's or ``each``'s, cancels the calls not started yet and is
    raised; on Ctrl-C the requests in flight are aborted instead of awaited.

    Example::

        concurrently(
            [(url, functools.partial(get_one, url)) for url in urls],  # get_one(url, deadline)
            timeout=10.0, workers=4, each=lambda url, resp, done: print(done, url),
        )
    """
    with Deadline(timeout) as deadline, ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(call, deadline): key for key, call in calls}
        try:
            for done, future in enumerate(as_completed(futures), 1):
                each(futures[future], future.result(), done)
        except BaseException as exc:
            for future in futures:
                future.cancel()
            if not isinstance(exc, Exception):
                deadline.abort()  # Ctrl-C: stop the requests in flight instead of awaiting them
            raise


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed, or never connected
        sock.shutdown(socket.SHUT_RDWR)


def _watched_connection(deadline: Deadline, base: type[http.client.HTTPConnection]) -> Any:
    """An HTTP(S) connection class whose sockets ``deadline`` can shut down at any phase."""

    class Connection(base):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._create_connection = self._open_socket
            context = getattr(self, "_context", None)
            if isinstance(context, ssl.SSLContext):
                setattr(self, "_context", _WatchedTLS(context, deadline))  # noqa: B010

        def _open_socket(
            self, address: tuple[str, int], timeout: Any = None, source: Any = None
        ) -> socket.socket:
            # socket.create_connection, with the socket watched *before* connect() blocks.
            host, port = address
            error: OSError | None = None
            found = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
            for family, kind, proto, _, addr in found:
                sock = socket.socket(family, kind, proto)
                deadline.watch(sock)
                try:
                    sock.settimeout(min(deadline.remaining(), timeout or deadline.seconds))
                    if source:
                        sock.bind(source)
                    sock.connect(addr)
                    return sock
                except OSError as exc:
                    error = exc
                    sock.close()
            raise error or OSError(f"cannot resolve {host}")

        def connect(self) -> None:
            super().connect()
            deadline.watch(self.sock)  # the TLS socket, once HTTPS has wrapped the plain one

    return Connection


class _WatchedTLS:
    """An SSL context whose sockets the deadline watches during the TLS handshake too:
    wrapping detaches the plain socket, and a server could trickle the handshake."""

    def __init__(self, context: ssl.SSLContext, deadline: Deadline) -> None:
        self._context = context
        self._deadline = deadline

    def wrap_socket(self, sock: socket.socket, server_hostname: str | None = None) -> Any:
        tls = self._context.wrap_socket(
            sock, server_hostname=server_hostname, do_handshake_on_connect=False
        )
        self._deadline.watch(tls)
        try:
            tls.do_handshake()
        except BaseException:
            tls.close()  # the caller never sees this socket: close it, or it leaks
            raise
        return tls

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


class _Handler(urllib.request.HTTPHandler):
    def __init__(self, deadline: Deadline) -> None:
        super().__init__()
        self._connection = _watched_connection(deadline, http.client.HTTPConnection)

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self._connection, req)


class _TLSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: Deadline) -> None:
        super().__init__()
        self._connection = _watched_connection(deadline, http.client.HTTPSConnection)

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self._connection, req, context=getattr(self, "_context", None))


def get(url: str, *, timeout: float, accept: str, deadline: Deadline | None = None) -> Response:
    """GET ``url``; raise SourceError (exit 3) unless the whole answer arrives within
    ``timeout`` s, or by ``deadline`` when one is given (shared by several requests)."""
    if deadline is None:
        with Deadline(timeout) as own:
            return get(url, timeout=timeout, accept=accept, deadline=own)
    request = urllib.request.Request(
        url, headers={"Accept": accept, "User-Agent": "hypoprobe-report"}
    )
    opener = urllib.request.build_opener(_Handler(deadline), _TLSHandler(deadline))
    late = SourceError(
        f"{_shown(url)} did not answer within {deadline.seconds:g} s; check the address or raise "
        "the timeout",
        EXIT_UNREACHABLE,
    )
    try:
        if deadline.expired:
            raise late
        with opener.open(request, timeout=max(0.001, deadline.remaining())) as resp:
            body = resp.read(MAX_BODY_BYTES + 1)
            status, ctype = resp.status, resp.headers.get("Content-Type", "")
        if deadline.expired:  # the socket was shut down mid-answer: what came is partial
            raise late
    except urllib.error.HTTPError as exc:
        try:
            body = exc.read(64 * 1024)
        except (OSError, http.client.HTTPException):
            body = b""
        if deadline.expired:
            raise late from None
        return Response(url, exc.code, exc.headers.get("Content-Type", "") or "", body)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise (
            late if deadline.expired or isinstance(exc, TimeoutError) else _unreachable(url, exc)
        ) from None
    if len(body) > MAX_BODY_BYTES:
        raise SourceError(
            f"{_shown(url)} answered with more than {MAX_BODY_BYTES // 2**20} MiB; is it the "
            "right URL?",
            EXIT_UNREACHABLE,
        )
    return Response(url, status, ctype, body)


def _shown(url: str) -> str:
    """The URL without its query: a PromQL query, URL-encoded, is noise in an error line."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(query="", fragment=""))


def _unreachable(url: str, exc: BaseException) -> SourceError:
    if isinstance(exc, urllib.error.URLError):
        return SourceError(
            f"cannot reach {_shown(url)}: {_reason(exc.reason)}; check the address and that the "
            "server is running",
            EXIT_UNREACHABLE,
        )
    return SourceError(
        f"cannot read {_shown(url)}: {_reason(exc)}; check the address and that the server "
        "is running",
        EXIT_UNREACHABLE,
    )


def _reason(reason: object) -> str:
    return str(reason) or type(reason).__name__
