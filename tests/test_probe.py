"""hypoprobe.probe(): transparent to the code it wraps, and what exactly it measures."""

from __future__ import annotations

import asyncio
import functools
import inspect
import traceback
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from pathlib import Path

import pytest

import hypoprobe
from conftest import FakeClock
from hypoprobe import ConfigurationError
from hypoprobe.model import Histogram, Snapshot
from hypoprobe.prometheus import families

PACKAGE_DIR = str(Path(hypoprobe.__file__).parent)
NO_ENDPOINT = "<none>"


def _calls(hid: str, name: str, endpoint: str = NO_ENDPOINT) -> Histogram:
    """The per-call duration histogram of one probe, from a fresh snapshot."""
    snap = hypoprobe.snapshot()
    found = [
        p.duration
        for p in snap.probes
        if (p.hypothesis, p.probe, p.endpoint) == (hid, name, endpoint)
    ]
    assert len(found) == 1, f"no single series for {(hid, name, endpoint)} in {snap.probes}"
    return found[0]


def _exceptions(hid: str) -> dict[tuple[str, str], int]:
    return {
        (x.probe, x.exception): x.count
        for x in hypoprobe.snapshot().exceptions
        if x.hypothesis == hid
    }


def _user_frames(exc: BaseException) -> list[tuple[str, str | None]]:
    """The traceback's frames, hypoprobe's own left out: what a developer reads."""
    return [
        (f.name, f.line)
        for f in traceback.extract_tb(exc.__traceback__)
        if not f.filename.startswith(PACKAGE_DIR)
    ]


def _frames_below(exc: BaseException, caller: str) -> list[tuple[str, str | None]]:
    frames = _user_frames(exc)
    names = [name for name, _ in frames]
    return frames[names.index(caller) + 1 :]


class Boom(Exception):
    pass


# -- the decorator is transparent ---------------------------------------------------------


def test_return_values_and_arguments_pass_through(unique_id: Callable[..., str]) -> None:
    hid = unique_id()
    sentinel = object()

    @hypoprobe.probe(hid)
    def work(a: int, /, b: str, *args: int, c: object = None, **kw: float) -> tuple[object, ...]:
        return (a, b, args, c, kw)

    assert work(1, "x", 2, 3, c=sentinel, d=1.5) == (1, "x", (2, 3), sentinel, {"d": 1.5})
    assert _calls(hid, work.__qualname__).count == 1


def test_exception_is_the_same_object_with_the_same_frames(
    unique_id: Callable[..., str],
) -> None:
    hid = unique_id()
    raised: list[BaseException] = []

    def fail(x: int) -> None:
        error = Boom(f"bad {x}")
        raised.append(error)
        raise error

    def call_bare() -> None:
        fail(1)

    probed = hypoprobe.probe(hid, name="fail")(fail)

    def call_probed() -> None:
        probed(1)

    with pytest.raises(Boom) as bare:
        call_bare()
    with pytest.raises(Boom) as through:
        call_probed()

    assert through.value is raised[-1]
    assert through.value.__cause__ is None
    assert through.value.__context__ is None
    bare_frames = _frames_below(bare.value, "call_bare")
    probed_frames = _frames_below(through.value, "call_probed")
    assert probed_frames == bare_frames
    assert probed_frames[-1] == ("fail", "raise error")
    assert _calls(hid, "fail").count == 1
    assert _exceptions(hid) == {("fail", f"{__name__}.Boom"): 1}


def test_base_exceptions_pass_through_too(unique_id: Callable[..., str]) -> None:
    hid = unique_id()

    @hypoprobe.probe(hid, name="exit")
    def leave() -> None:
        raise SystemExit(3)

    with pytest.raises(SystemExit) as caught:
        leave()
    assert caught.value.code == 3
    assert _exceptions(hid) == {("exit", "SystemExit"): 1}


def test_introspection_is_preserved(unique_id: Callable[..., str]) -> None:
    def original(a: int, b: str = "x", *, c: float = 1.0) -> list[str]:
        """Docs of the original."""
        return [b] * a

    original.custom = "kept"  # type: ignore[attr-defined]
    probed = hypoprobe.probe(unique_id())(original)

    assert inspect.signature(probed) == inspect.signature(original)
    assert probed.__name__ == "original"
    assert probed.__qualname__ == original.__qualname__
    assert probed.__doc__ == "Docs of the original."
    assert probed.__module__ == __name__
    assert probed.__wrapped__ is original  # type: ignore[attr-defined]
    assert probed.__annotations__ == original.__annotations__
    assert probed.custom == "kept"  # type: ignore[attr-defined]
    assert inspect.unwrap(probed) is original
    assert not inspect.iscoroutinefunction(probed)
    assert not inspect.isgeneratorfunction(probed)


def test_methods_classmethods_and_staticmethods(unique_id: Callable[..., str]) -> None:
    hid = unique_id()

    class Repo:
        base = 10

        def __init__(self, n: int) -> None:
            self.n = n

        @hypoprobe.probe(hid)
        def method(self, x: int) -> int:
            """Method docs."""
            return self.n + x

        @hypoprobe.probe(hid)
        @classmethod
        def outer_classmethod(cls, x: int) -> int:
            return cls.base + x

        @classmethod
        @hypoprobe.probe(hid)
        def inner_classmethod(cls, x: int) -> int:
            return cls.base * x

        @hypoprobe.probe(hid)
        @staticmethod
        def outer_staticmethod(x: int) -> int:
            return -x

        @staticmethod
        @hypoprobe.probe(hid)
        def inner_staticmethod(x: int) -> int:
            return x * x

    class Sub(Repo):
        base = 20

    repo = Repo(5)
    assert repo.method(1) == 6
    assert Repo.method(repo, 2) == 7
    assert Repo.method.__doc__ == "Method docs."
    assert list(inspect.signature(repo.method).parameters) == ["x"]
    assert Repo.outer_classmethod(1) == 11
    assert Sub.outer_classmethod(1) == 21
    assert repo.inner_classmethod(2) == 20
    assert Sub.inner_classmethod(2) == 40
    assert Repo.outer_staticmethod(3) == -3
    assert repo.inner_staticmethod(3) == 9
    assert isinstance(Repo.__dict__["outer_classmethod"], classmethod)
    assert isinstance(Repo.__dict__["outer_staticmethod"], staticmethod)

    counts = {
        p.probe.rsplit(".", 1)[-1]: p.duration.count
        for p in hypoprobe.snapshot().probes
        if p.hypothesis == hid
    }
    assert counts == {
        "method": 2,
        "outer_classmethod": 2,
        "inner_classmethod": 2,
        "outer_staticmethod": 1,
        "inner_staticmethod": 1,
    }


def test_default_name_is_the_qualified_name(unique_id: Callable[..., str]) -> None:
    hid = unique_id()

    class Service:
        @hypoprobe.probe(hid)
        def load(self) -> None:
            pass

    @hypoprobe.probe(hid)
    def helper() -> None:
        pass

    Service().load()
    helper()
    names = {p.probe for p in hypoprobe.snapshot().probes if p.hypothesis == hid}
    assert names == {
        "test_default_name_is_the_qualified_name.<locals>.Service.load",
        "test_default_name_is_the_qualified_name.<locals>.helper",
    }


def test_explicit_name_wins(unique_id: Callable[..., str]) -> None:
    hid = unique_id()

    @hypoprobe.probe(hid, name="campaigns.count_query")
    def count() -> int:
        return 3

    assert count() == 3
    assert _calls(hid, "campaigns.count_query").count == 1


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("not an id",), {}, "ticket-like"),
        ((None,), {}, "ticket-like"),
        (("PERF-1",), {"name": ""}, "probe name"),
        (("PERF-1",), {"name": 7}, "probe name"),
        (("PERF-1",), {"name": "x" * 201}, "probe name"),
        (("PERF-1",), {"nmae": "x"}, "nmae"),
    ],
)
def test_bad_probe_arguments_raise_at_decoration_time(
    args: tuple[object, ...], kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match):
        hypoprobe.probe(*args, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("target", [int, 42, "text"])
def test_probe_decorates_only_functions(target: object) -> None:
    with pytest.raises(ConfigurationError, match="decorates functions"):
        hypoprobe.probe("PERF-1")(target)  # type: ignore[type-var]


# -- what is measured -------------------------------------------------------------------


def test_a_sync_call_records_its_duration(
    unique_id: Callable[..., str], fake_clock: FakeClock
) -> None:
    hid = unique_id()

    @hypoprobe.probe(hid, name="q")
    def query(ns: int) -> None:
        fake_clock.advance(ns)

    @hypoprobe.probe(hid, name="q")  # the same (hypothesis, name): the same series
    def failing_query() -> None:
        fake_clock.advance(7_000)
        raise Boom()

    for ns in (1_000, 2_000_000, 3_000_000_000):
        query(ns)
    with pytest.raises(Boom):
        failing_query()
    hist = _calls(hid, "q")
    assert hist.count == 4
    assert hist.sum == pytest.approx(3.002008, abs=1e-12)


def test_async_def_stays_a_coroutine_function_and_its_awaited_time_is_measured(
    unique_id: Callable[..., str], fake_clock: FakeClock
) -> None:
    hid = unique_id()

    @hypoprobe.probe(hid, name="fetch")
    async def fetch(x: int) -> int:
        """Fetch docs."""
        fake_clock.advance(200_000_000)  # 200 ms before the first suspension...
        await asyncio.sleep(0)
        fake_clock.advance(50_000_000)  # ...and 50 ms after it
        return x * 2

    @hypoprobe.probe(hid, name="fail")
    async def fail() -> None:
        await asyncio.sleep(0)
        fake_clock.advance(1_000_000)
        raise Boom("async")

    assert inspect.iscoroutinefunction(fetch)
    assert inspect.signature(fetch) == inspect.signature(fetch.__wrapped__)  # type: ignore[attr-defined]
    assert fetch.__doc__ == "Fetch docs."
    assert asyncio.run(fetch(21)) == 42
    with pytest.raises(Boom, match="async"):
        asyncio.run(fail())

    hist = _calls(hid, "fetch")
    assert hist.count == 1
    assert hist.sum == pytest.approx(0.25, abs=1e-12)
    failed = _calls(hid, "fail")
    assert failed.count == 1
    assert failed.sum == pytest.approx(0.001, abs=1e-12)
    assert _exceptions(hid) == {("fail", f"{__name__}.Boom"): 1}


def test_async_method_and_coroutine_cancellation(
    unique_id: Callable[..., str], fake_clock: FakeClock
) -> None:
    hid = unique_id()

    class Client:
        @hypoprobe.probe(hid, name="get")
        async def get(self) -> str:
            fake_clock.advance(3_000)
            await asyncio.sleep(3600)
            return "never"

    async def main() -> None:
        task = asyncio.create_task(Client().get())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    hist = _calls(hid, "get")
    assert hist.count == 1
    assert hist.sum == pytest.approx(3e-6, abs=1e-12)
    assert _exceptions(hid) == {("get", "asyncio.exceptions.CancelledError"): 1}


# Generators: what a probe measures is the time spent *inside* the generator (every
# resumption), not the consumer's time between values, and the whole iteration is one call.


def test_generator_time_inside_is_measured_as_one_call(
    unique_id: Callable[..., str], fake_clock: FakeClock
) -> None:
    hid = unique_id()
    received: list[object] = []

    @hypoprobe.probe(hid, name="rows")
    def rows(n: int) -> Generator[int, object, int]:
        fake_clock.advance(5)  # set-up, before the first value
        for i in range(n):
            fake_clock.advance(1_000 * (i + 1))
            received.append((yield i))
        fake_clock.advance(7)
        return n

    assert inspect.isgeneratorfunction(rows)
    out = []
    for value in rows(3):
        fake_clock.advance(1_000_000_000)  # the consumer's own time: not the generator's
        out.append(value)
    assert out == [0, 1, 2]

    def delegate() -> Iterator[int]:
        result = yield from rows(2)
        assert result == 2
        yield -1

    assert list(delegate()) == [0, 1, -1]

    gen = rows(2)
    assert next(gen) == 0
    assert gen.send("hello") == 1
    assert received[-1] == "hello"

    hist = _calls(hid, "rows")
    # 3 values: 5 + 1000 + 2000 + 3000 + 7; 2 values: 5 + 1000 + 2000 + 7; the last generator
    # is still open, so it has not been recorded yet.
    assert hist.count == 2
    assert hist.sum == pytest.approx((6_012 + 3_012) / 1e9, abs=1e-15)
    gen.close()
    hist = _calls(hid, "rows")
    assert hist.count == 3
    assert hist.sum == pytest.approx((6_012 + 3_012 + 3_005) / 1e9, abs=1e-15)


def test_generator_closed_early_is_one_call(
    unique_id: Callable[..., str], fake_clock: FakeClock
) -> None:
    hid = unique_id()
    closed: list[bool] = []

    @hypoprobe.probe(hid, name="items")
    def items() -> Generator[int, None, None]:
        try:
            for i in range(10):
                fake_clock.advance(100)
                yield i
        finally:
            closed.append(True)

    for value in items():
        if value == 1:
            break  # the for loop drops the generator, which closes it
    gen = items()
    next(gen)
    gen.close()
    assert closed == [True, True]
    hist = _calls(hid, "items")
    assert hist.count == 2
    assert hist.sum == pytest.approx((200 + 100) / 1e9, abs=1e-15)


def test_generator_throw_reaches_the_generator(unique_id: Callable[..., str]) -> None:
    hid = unique_id()

    @hypoprobe.probe(hid, name="resilient")
    def resilient() -> Generator[str, None, None]:
        while True:
            try:
                yield "value"
            except KeyError as exc:
                yield f"recovered {exc.args[0]}"

    gen = resilient()
    assert next(gen) == "value"
    assert gen.throw(KeyError("k")) == "recovered k"
    assert next(gen) == "value"
    gen.close()
    assert _calls(hid, "resilient").count == 1
    assert _exceptions(hid) == {}


def test_generator_that_raises_is_one_call(
    unique_id: Callable[..., str], fake_clock: FakeClock
) -> None:
    hid = unique_id()
    error = Boom("mid-iteration")

    @hypoprobe.probe(hid, name="items")
    def items() -> Iterator[int]:
        for i in range(10):
            fake_clock.advance(100)
            if i == 2:
                raise error
            yield i

    @hypoprobe.probe(hid, name="unhandled")
    def unhandled() -> Generator[int, None, None]:
        fake_clock.advance(10)
        yield 1

    with pytest.raises(Boom) as caught:
        list(items())
    assert caught.value is error
    gen = unhandled()
    next(gen)
    with pytest.raises(ValueError, match="not handled"):
        gen.throw(ValueError("not handled"))

    hist = _calls(hid, "items")
    assert hist.count == 1
    assert hist.sum == pytest.approx(300e-9, abs=1e-15)
    hist = _calls(hid, "unhandled")
    assert hist.count == 1
    assert hist.sum == pytest.approx(10e-9, abs=1e-15)
    assert _exceptions(hid) == {("items", f"{__name__}.Boom"): 1, ("unhandled", "ValueError"): 1}


def test_async_generator_time_inside_is_measured_as_one_call(
    unique_id: Callable[..., str], fake_clock: FakeClock
) -> None:
    hid = unique_id()

    @hypoprobe.probe(hid, name="stream")
    async def stream(n: int) -> AsyncGenerator[int, None]:
        for i in range(n):
            fake_clock.advance(10_000)
            await asyncio.sleep(0)
            yield i

    async def main() -> list[int]:
        out = []
        async for value in stream(4):
            fake_clock.advance(10**9)  # the consumer's time
            out.append(value)
        early = stream(10)
        assert await early.__anext__() == 0
        await early.aclose()
        return out

    assert inspect.isasyncgenfunction(stream)
    assert asyncio.run(main()) == [0, 1, 2, 3]
    hist = _calls(hid, "stream")
    assert hist.count == 2
    assert hist.sum == pytest.approx(50_000e-9, abs=1e-15)


def test_async_generator_that_raises_is_one_call(
    unique_id: Callable[..., str], fake_clock: FakeClock
) -> None:
    hid = unique_id()

    @hypoprobe.probe(hid, name="broken")
    async def broken() -> AsyncIterator[int]:
        fake_clock.advance(30)
        yield 1
        fake_clock.advance(40)
        raise Boom("stream broke")

    async def main() -> None:
        with pytest.raises(Boom, match="stream broke"):
            async for _ in broken():
                pass

    asyncio.run(main())
    failed = _calls(hid, "broken")
    assert failed.count == 1
    assert failed.sum == pytest.approx(70e-9, abs=1e-15)
    assert _exceptions(hid) == {("broken", f"{__name__}.Boom"): 1}


# -- context managers -------------------------------------------------------------------


def test_context_manager_measures_the_block(
    unique_id: Callable[..., str], fake_clock: FakeClock
) -> None:
    hid = unique_id()
    block = hypoprobe.probe(hid, name="block")
    with block as entered:
        fake_clock.advance(4_000)
    assert entered is block
    with block:  # one probe object may be used again, and nested
        fake_clock.advance(1_000)
        with block:
            fake_clock.advance(500)
    error = Boom("inside")

    def failing_block() -> None:
        with hypoprobe.probe(hid, name="block"):
            fake_clock.advance(2_000)
            raise error

    with pytest.raises(Boom) as caught:
        failing_block()
    assert caught.value is error

    hist = _calls(hid, "block")
    assert hist.count == 4
    assert hist.sum == pytest.approx((4_000 + 1_500 + 500 + 2_000) / 1e9, abs=1e-15)
    assert _exceptions(hid) == {("block", f"{__name__}.Boom"): 1}


def test_async_context_manager_measures_the_block(
    unique_id: Callable[..., str], fake_clock: FakeClock
) -> None:
    hid = unique_id()

    async def main() -> None:
        async with hypoprobe.probe(hid, name="fetch"):
            fake_clock.advance(6_000)
            await asyncio.sleep(0)
            fake_clock.advance(1_000)
        with pytest.raises(Boom):
            async with hypoprobe.probe(hid, name="fetch"):
                raise Boom()

    asyncio.run(main())
    hist = _calls(hid, "fetch")
    assert hist.count == 2
    assert hist.sum == pytest.approx(7e-6, abs=1e-15)


def test_context_manager_default_name_is_the_enclosing_function(
    unique_id: Callable[..., str],
) -> None:
    hid = unique_id()

    def load_campaigns() -> None:
        with hypoprobe.probe(hid):
            pass

    async def fetch_campaigns() -> None:
        async with hypoprobe.probe(hid):
            pass

    load_campaigns()
    asyncio.run(fetch_campaigns())
    with hypoprobe.probe(hid):
        pass
    names = {p.probe for p in hypoprobe.snapshot().probes if p.hypothesis == hid}
    prefix = "test_context_manager_default_name_is_the_enclosing_function"
    assert names == {
        f"{prefix}.<locals>.load_campaigns",
        f"{prefix}.<locals>.fetch_campaigns",
        prefix,
    }


# -- hypotheses registered later, or never ------------------------------------------------


def test_probe_on_an_unknown_hypothesis_is_recorded_and_reported(
    unique_id: Callable[..., str],
) -> None:
    hid = unique_id()

    @hypoprobe.probe(hid, name="orphan")
    def orphan() -> int:
        return 1

    assert orphan() == 1
    snap = hypoprobe.snapshot()
    assert hid in snap.unregistered
    assert _calls(hid, "orphan").count == 1

    only_ids = Snapshot(created_at=snap.created_at, source="", unregistered=snap.unregistered)
    exposed = {
        s.labels["hypothesis"]: s.value
        for fam in families(only_ids)
        if fam.name == "hypoprobe_unregistered_hypothesis"
        for s in fam.samples
    }
    assert exposed[hid] == 1.0

    hypoprobe.hypothesis(hid, claim="registered late", endpoint="GET /late", min_share=0.1)
    assert hid not in hypoprobe.snapshot().unregistered
    assert orphan() == 1
    assert _calls(hid, "orphan").count == 2


def test_wrapping_with_functools_partial_and_callables(unique_id: Callable[..., str]) -> None:
    hid = unique_id()

    class Callable3:
        def __call__(self, x: int) -> int:
            return x * 3

    tripled = hypoprobe.probe(hid, name="callable")(Callable3())
    partial = hypoprobe.probe(hid, name="partial")(functools.partial(pow, 2))
    assert tripled(2) == 6
    assert partial(10) == 1024
    assert _calls(hid, "callable").count == 1
    assert _calls(hid, "partial").count == 1


def test_exception_classes_are_bounded_per_probe(unique_id: Callable[..., str]) -> None:
    hid = unique_id()
    classes = [type(f"Error{i}", (Exception,), {}) for i in range(25)]

    @hypoprobe.probe(hid, name="many")
    def many(cls: type[Exception]) -> None:
        raise cls()

    for cls in classes:
        with pytest.raises(cls):
            many(cls)
    with pytest.raises(classes[0]):
        many(classes[0])
    counts = _exceptions(hid)
    assert len(counts) == 21  # 20 classes by name, then one "other"
    assert counts[("many", "other")] == 5
    assert counts[("many", f"{__name__}.Error0")] == 2
    assert sum(counts.values()) == 26
    assert _calls(hid, "many").count == 26
