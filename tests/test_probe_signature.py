"""A probed function takes its own parameters: every call binds exactly as the plain one.

The sync decorator's wrapper is made with the decorated function's own parameter list (no
``*args, **kwargs`` dict per call). Whatever a caller passes, the function must receive
the same values, or the call must fail with the same ``TypeError``, as without the probe;
and each call the function ran is counted once.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hypoprobe

PACKAGE_DIR = str(Path(hypoprobe.__file__).parent)
_SHARED: list[int] = []


def _plain(a: Any, b: Any = 2) -> Any:
    return ("plain", a, b)


def _positional_only(a: Any, b: Any = _SHARED, /, c: Any = 3) -> Any:
    return ("positional_only", a, b, c)


def _keyword_only(a: Any, *, k: Any, m: Any = "m") -> Any:
    return ("keyword_only", a, k, m)


def _star(a: Any, *rest: Any, k: Any = None) -> Any:
    return ("star", a, rest, k)


def _double_star(a: Any = 1, **extra: Any) -> Any:
    return ("double_star", a, extra)


def _everything(
    a: Any, b: Any = 2, /, c: Any = 3, *rest: Any, d: Any, e: Any = 5, **kw: Any
) -> Any:
    return ("everything", a, b, c, rest, d, e, kw)


def _no_parameters() -> Any:
    return "no_parameters"


def _internal_names(fn: Any, site: Any = 0, *, CLOCK: Any = 1, Exception: Any = 2) -> Any:
    # Parameters named as names the wrapper's body uses: the probe must still forward them.
    return ("internal_names", fn, site, CLOCK, Exception)


FUNCTIONS: list[Callable[..., Any]] = [
    _plain,
    _positional_only,
    _keyword_only,
    _star,
    _double_star,
    _everything,
    _no_parameters,
    _internal_names,
]
NAMES = ("a", "b", "c", "d", "e", "k", "m", "z", "fn", "site", "CLOCK", "Exception", "rest")


def _outcome(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    try:
        return ("returned", fn(*args, **kwargs))
    except TypeError as exc:
        return ("raised", str(exc))


@given(
    index=st.integers(0, len(FUNCTIONS) - 1),
    args=st.lists(st.integers(), max_size=5).map(tuple),
    kwargs=st.dictionaries(st.sampled_from(NAMES), st.integers(), max_size=4),
)
def test_every_call_binds_as_the_plain_function_would(
    index: int, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    plain = FUNCTIONS[index]
    probed = hypoprobe.probe("SIGNATURE-1", name=f"signature.{plain.__name__}")(plain)
    assert _outcome(probed, args, kwargs) == _outcome(plain, args, kwargs)


async def _async_everything(
    a: Any, b: Any = 2, /, c: Any = 3, *rest: Any, d: Any, e: Any = 5, **kw: Any
) -> Any:
    return ("async_everything", a, b, c, rest, d, e, kw)


async def _async_keyword_only(a: Any, *, k: Any, m: Any = "m") -> Any:
    return ("async_keyword_only", a, k, m)


def _awaited(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    try:
        awaitable = fn(*args, **kwargs)
    except TypeError as exc:
        return ("raised", str(exc))
    return ("returned", asyncio.run(awaitable))


@given(
    coroutine=st.sampled_from([_async_everything, _async_keyword_only]),
    args=st.lists(st.integers(), max_size=5).map(tuple),
    kwargs=st.dictionaries(st.sampled_from(NAMES), st.integers(), max_size=4),
)
@settings(max_examples=50, deadline=None)  # an event loop per example
def test_a_coroutine_function_binds_as_the_plain_one(
    coroutine: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    probed = hypoprobe.probe("SIGNATURE-1", name=f"signature.{coroutine.__name__}")(coroutine)
    assert inspect.iscoroutinefunction(probed)
    assert _awaited(probed, args, kwargs) == _awaited(coroutine, args, kwargs)


def test_each_call_the_function_ran_is_counted_once(unique_id: Callable[..., str]) -> None:
    hid = unique_id()
    probed = hypoprobe.probe(hid, name="everything")(_everything)
    probed(1, d=4)
    probed(1, 2, 3, 4, 5, d=6, z=1)
    with pytest.raises(TypeError, match="missing 1 required keyword-only argument: 'd'"):
        probed(1)  # type: ignore[call-arg]  # the function never ran: nothing to time
    [found] = [p for p in hypoprobe.snapshot().probes if p.hypothesis == hid]
    assert found.duration.count == 2


def test_defaults_are_the_functions_own_objects(unique_id: Callable[..., str]) -> None:
    def collect(item: int, into: list[int] = [], *, limit: int = 3) -> list[int]:  # noqa: B006
        into.append(item)
        return into[:limit]

    probed = hypoprobe.probe(unique_id(), name="collect")(collect)
    probed(1)
    collect(2)
    assert probed(3) == [1, 2, 3]  # one mutable default, shared, as without the probe
    assert probed.__defaults__ is collect.__defaults__
    collect.__kwdefaults__["limit"] = 1  # type: ignore[index]
    assert probed(4) == [1]


def test_a_method_takes_self_and_its_own_parameters(unique_id: Callable[..., str]) -> None:
    hid = unique_id()

    class Repository:
        @hypoprobe.probe(hid, name="find")
        def find(self, key: str, *, fresh: bool = False) -> tuple[Repository, str, bool]:
            return self, key, fresh

        @hypoprobe.probe(hid, name="build")
        @classmethod
        def build(cls, size: int = 1) -> tuple[type[Repository], int]:
            return cls, size

    repo = Repository()
    assert repo.find("k", fresh=True) == (repo, "k", True)
    assert Repository.find(repo, key="k") == (repo, "k", False)
    assert Repository.build() == (Repository, 1)
    with pytest.raises(TypeError, match=r"Repository\.find\(\) missing 1 required positional"):
        repo.find()  # type: ignore[call-arg]


def test_other_callables_are_forwarded_as_they_are(unique_id: Callable[..., str]) -> None:
    hid = unique_id()
    partial = hypoprobe.probe(hid, name="partial")(functools.partial(_plain, b="bound"))
    assert partial(1) == ("plain", 1, "bound")
    assert partial(a=1, b=2) == ("plain", 1, 2)
    builtin = hypoprobe.probe(hid, name="builtin")(max)
    assert builtin(3, 7, key=lambda x: -x) == 3


def test_a_traceback_through_the_probe_shows_hypoprobe_source(
    unique_id: Callable[..., str],
) -> None:
    @hypoprobe.probe(unique_id(), name="failing")
    def failing(reason: str) -> None:
        raise ValueError(reason)

    with pytest.raises(ValueError, match="why") as caught:
        failing("why")
    frames = traceback.extract_tb(caught.value.__traceback__)
    wrapper = [f for f in frames if f.name == "probed"]
    assert len(wrapper) == 1
    assert wrapper[0].filename.startswith(PACKAGE_DIR)  # filtered like any library frame
    assert "fn(" in (wrapper[0].line or "")  # the template's own line
    assert frames[-1].name == "failing"


def test_clock_configured_after_decoration_is_used(
    unique_id: Callable[..., str], restore_config: None
) -> None:
    hid = unique_id()
    probed = hypoprobe.probe(hid, name="clocked")(_plain)
    ticks = iter(range(0, 10**9, 1000))
    hypoprobe.configure(clock=lambda: next(ticks))
    probed(1)
    [found] = [p for p in hypoprobe.snapshot().probes if p.hypothesis == hid]
    assert found.duration.sum == pytest.approx(1000e-9)
