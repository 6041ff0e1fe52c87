"""Exactly what each public module exports: its ``__all__`` is what it defines, no more.

In the manner of httpx's ``tests/test_exported_members.py``: a public name added without
``__all__`` (or an ``__all__`` entry without the name) fails here.
"""

from __future__ import annotations
import __future__

import inspect
from types import ModuleType

import hypoprobe
from hypoprobe import errors, model, testing


def _public(module: ModuleType) -> list[str]:
    return sorted(
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, ModuleType)
        and not isinstance(value, __future__._Feature)  # from __future__ import annotations
    )


def test_hypoprobe_exports_exactly_its_public_members() -> None:
    assert sorted(n for n in hypoprobe.__all__ if n != "__version__") == _public(hypoprobe)
    assert hypoprobe.__all__ == sorted(hypoprobe.__all__)


def test_the_model_exports_every_class_it_defines() -> None:
    defined = sorted(
        name
        for name, value in vars(model).items()
        if inspect.isclass(value) and value.__module__ == model.__name__ and name[0] != "_"
    )
    assert sorted(n for n in model.__all__ if n != "SCHEMA") == defined
    for name in model.__all__:
        assert hasattr(model, name), name


def test_errors_exports_every_error_and_exit_code() -> None:
    assert sorted(errors.__all__) == _public(errors)


def test_the_model_is_a_module_and_snapshot_a_function() -> None:
    import hypoprobe.model as m

    assert m.Histogram is model.Histogram
    assert hypoprobe.Snapshot is model.Snapshot
    assert callable(hypoprobe.snapshot)
    assert isinstance(hypoprobe.snapshot(), model.Snapshot)
    # The module's old name still imports: code written against hypoprobe.snapshot.X.
    from hypoprobe.model import Histogram

    assert Histogram is model.Histogram


def test_testing_exports_its_fake_clock_and_reset() -> None:
    assert testing.__all__ == ["FakeClock", "fake_clock", "reset"]
    defined = sorted(
        name
        for name, value in vars(testing).items()
        if getattr(value, "__module__", None) == testing.__name__ and name[0] != "_"
    )
    assert sorted(testing.__all__) == defined
