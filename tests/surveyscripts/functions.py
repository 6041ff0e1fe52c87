"""Functions of a surveyed module stay transparent; a fault of the survey never raises."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import types

import hypoprobe
from hypoprobe import _survey
from hypoprobe.analysis._survey import survey_of

mod = types.ModuleType("surveyed_mod")
exec(  # a module defined here, as if imported
    """
class Boom(Exception):
    pass

def add(a, b=1):
    "Add."
    return a + b

def fail():
    raise Boom("no")

async def later(x):
    return x * 2

def gen():
    yield 1

class Thing:
    def method(self, x):
        return x + 1
    @staticmethod
    def static(x):
        return x - 1
    @classmethod
    def klass(cls, x):
        return cls.__name__ + str(x)
""",
    mod.__dict__,
)
mod.__dict__["__name__"] = "surveyed_mod"
for value in list(mod.__dict__.values()):
    if hasattr(value, "__module__"):
        with contextlib.suppress(AttributeError, TypeError):
            value.__module__ = "surveyed_mod"
sys.modules["surveyed_mod"] = mod
original_add = mod.add
hypoprobe.survey(modules=["surveyed_mod"])
assert mod.add is not original_add
assert mod.add.__wrapped__ is original_add
assert mod.add.__name__ == "add"
assert mod.add.__doc__ == "Add."
assert mod.gen.__name__ == "gen"
assert not hasattr(mod.gen, "__wrapped__")
assert asyncio.iscoroutinefunction(mod.later)
with hypoprobe.endpoint("GET /fn"):
    assert mod.add(2, b=3) == 5
    caught: BaseException | None = None
    try:
        mod.fail()
    except mod.Boom as exc:
        caught = exc
    assert type(caught) is mod.Boom
    assert str(caught) == "no"
    assert asyncio.run(mod.later(4)) == 8
    t = mod.Thing()
    assert t.method(1) == 2
    assert mod.Thing.static(1) == 0
    assert mod.Thing.klass(1) == "Thing1"
assert mod.add(1) == 2  # outside any scope: passes straight through
found = survey_of(hypoprobe.snapshot(), endpoint="GET /fn")
names = {c.probe for c in found.endpoints[0].candidates}
assert {
    "surveyed_mod:add",
    "surveyed_mod:fail",
    "surveyed_mod:later",
    "surveyed_mod:Thing.method",
    "surveyed_mod:Thing.static",
    "surveyed_mod:Thing.klass",
} <= names, names


def broken(*args: object) -> object:
    raise RuntimeError("survey fault")


_survey._entry = broken  # type: ignore[assignment]
with hypoprobe.endpoint("GET /fn2"):
    assert mod.add(1, 1) == 2
assert hypoprobe.snapshot().internal_errors.get("survey_function", 0) >= 1
print("ok")
