"""Near the recursion limit a probe never swaps the caller's exception or result.

The wrapped function runs one frame deeper than the probe's wrapper; the wrapper's own
bookkeeping (recording the call, counting the exception) needs a few frames more. When the
limit falls inside that bookkeeping, the bookkeeping gives up (counted when it can be),
and the application gets exactly what the wrapped code gave.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

import hypoprobe


def _at_every_depth(call: Callable[[], None]) -> list[BaseException]:
    """Run ``call`` with its frame at each depth near the limit; what each run raised."""
    seen: list[BaseException] = []

    def dive(remaining: int) -> None:
        if remaining:
            dive(remaining - 1)
            return
        try:
            call()
        except BaseException as exc:
            seen.append(exc)

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)
    try:
        base = len(_frames())
        for depth in range(200 - base - 40, 200 - base):
            with contextlib.suppress(RecursionError):  # dive ran out before the call
                dive(depth)
    finally:
        sys.setrecursionlimit(limit)
    return seen


def _frames() -> list[object]:
    frames = []
    frame = sys._getframe(1)
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back  # type: ignore[assignment]
    return frames


def test_a_probe_never_swaps_the_wrapped_functions_exception(
    unique_id: Callable[..., str], clean_faults: None
) -> None:
    ep = unique_id("ep")
    hid = unique_id()
    hypoprobe.hypothesis(hid, claim="recursion", endpoint=ep, min_share=0.5)

    @hypoprobe.probe(hid)
    def failing() -> None:
        raise ValueError("the app's own error")

    def request() -> None:
        with hypoprobe.endpoint(ep):
            failing()

    seen = _at_every_depth(request)
    assert seen
    # Where the limit fell in the app's own frames, the app saw its RecursionError (as it
    # would without hypoprobe); everywhere else it saw its own ValueError, never one made
    # by the probe's bookkeeping.
    for exc in seen:
        if isinstance(exc, RecursionError):
            assert not any("hypoprobe/_" in f for f in _traceback_files(exc)), exc
        else:
            assert isinstance(exc, ValueError)
    assert any(isinstance(exc, ValueError) for exc in seen)


def test_a_probe_near_the_limit_returns_what_the_wrapped_code_returned(
    unique_id: Callable[..., str], clean_faults: None
) -> None:
    ran: list[bool] = []
    outcomes: list[tuple[bool, object]] = []

    @hypoprobe.probe(unique_id())
    def ok() -> str:
        ran.append(True)
        return "result"

    @hypoprobe.probe(unique_id())
    def gen() -> Iterator[str]:
        ran.append(True)
        yield "item"

    def call(fn: Callable[[], object]) -> Callable[[], None]:
        def attempt() -> None:
            ran.clear()
            try:
                value = fn()
            except RecursionError as exc:
                outcomes.append((bool(ran), exc))
                raise
            outcomes.append((bool(ran), value))

        return attempt

    _at_every_depth(call(ok))
    _at_every_depth(call(lambda: list(gen())))
    # Whenever the wrapped code ran to its end, its caller got its value: a RecursionError
    # can only come from the call itself not fitting (as it would without hypoprobe).
    completed = [value for did_run, value in outcomes if did_run]
    assert "result" in completed
    assert ["item"] in completed
    assert all(value in ("result", ["item"]) for value in completed), [
        (v, _where(v)) for v in completed if not isinstance(v, (str, list))
    ]


def _traceback_files(exc: BaseException) -> list[str]:
    """The file of the innermost frame: where the RecursionError was raised."""
    files = []
    tb = exc.__traceback__
    while tb is not None:
        files.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    return files[-1:]


def _where(exc: object) -> list[str]:
    import traceback

    assert isinstance(exc, BaseException)
    return traceback.format_tb(exc.__traceback__)[-2:]
