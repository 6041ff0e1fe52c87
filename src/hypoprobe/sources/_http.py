"""One HTTP GET with the stdlib, turning every way of not getting an answer into SourceError."""

from __future__ import annotations

import http.client
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

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
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SourceError(
            f"{url!r} is not an http(s) URL: pass http://HOST:PORT[/path]", EXIT_USAGE
        )
    if default_path and parts.path in ("", "/"):
        parts = parts._replace(path=default_path)
    return urllib.parse.urlunsplit(parts)


def get(url: str, *, timeout: float, accept: str) -> Response:
    """GET ``url``; raise SourceError (exit 3) when no HTTP answer arrives in ``timeout`` s."""
    request = urllib.request.Request(
        url, headers={"Accept": accept, "User-Agent": "hypoprobe-report"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            body = resp.read(MAX_BODY_BYTES + 1)
            status, ctype = resp.status, resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        try:
            body = exc.read(64 * 1024)
        except (OSError, http.client.HTTPException):
            body = b""
        return Response(url, exc.code, exc.headers.get("Content-Type", "") or "", body)
    except urllib.error.URLError as exc:
        raise SourceError(
            f"cannot reach {_shown(url)}: {_reason(exc.reason)}; check the address and that the "
            "server is running",
            EXIT_UNREACHABLE,
        ) from None
    except TimeoutError:
        raise SourceError(
            f"{_shown(url)} did not answer within {timeout:g} s; check the address or raise "
            "the timeout",
            EXIT_UNREACHABLE,
        ) from None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise SourceError(
            f"cannot read {_shown(url)}: {_reason(exc)}; check the address and that the server "
            "is running",
            EXIT_UNREACHABLE,
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


def _reason(reason: object) -> str:
    return str(reason) or type(reason).__name__
