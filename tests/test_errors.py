"""The exception tree: every error in hypoprobe.errors, each carrying the CLI's exit code."""

from __future__ import annotations

import inspect

import pytest

import hypoprobe
import hypoprobe.analysis
import hypoprobe.cli
import hypoprobe.sources
from hypoprobe import errors

#: Modules that run something on import (entry points, the site bootstrap) or are generated.
SKIP = ("hypoprobe.demo", "hypoprobe._proto", "hypoprobe.run._boot")

ERRORS = [
    obj
    for _, obj in inspect.getmembers(errors, inspect.isclass)
    if issubclass(obj, BaseException) and obj.__module__ == errors.__name__
]


def test_every_error_is_defined_in_errors_and_drawn_in_its_docstring() -> None:
    assert {cls.__name__ for cls in ERRORS} == {
        "ConfigurationError",
        "HypoprobeError",
        "NoDataError",
        "SnapshotError",
        "SourceError",
        "UsageError",
    }
    tree = errors.__doc__ or ""
    for cls in ERRORS:
        assert issubclass(cls, errors.HypoprobeError)
        assert cls.__name__ in tree, f"{cls.__name__} is missing from the tree"
        assert cls.__name__ in errors.__all__


def test_no_other_module_defines_a_hypoprobe_error() -> None:
    import pkgutil

    for info in pkgutil.walk_packages(hypoprobe.__path__, "hypoprobe."):
        if info.name.startswith(SKIP) or info.name.endswith("__main__"):
            continue
        module = __import__(info.name, fromlist=["_"])
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, errors.HypoprobeError):
                assert obj.__module__ == errors.__name__, f"{obj} defined in {obj.__module__}"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.HypoprobeError("x"), errors.EXIT_SOURCE),
        (errors.ConfigurationError("x"), errors.EXIT_SOURCE),
        (errors.SnapshotError("x"), errors.EXIT_SOURCE),
        (errors.NoDataError("x"), errors.EXIT_NO_DATA),
        (errors.UsageError("x"), errors.EXIT_USAGE),
        (errors.SourceError("x"), errors.EXIT_UNREACHABLE),
        (errors.SourceError("x", errors.EXIT_NO_DATA), errors.EXIT_NO_DATA),
        (errors.SourceError("x", errors.EXIT_USAGE), errors.EXIT_USAGE),
    ],
)
def test_each_error_carries_its_exit_code(error: errors.HypoprobeError, code: int) -> None:
    assert error.exit_code == code


def test_old_import_paths_keep_working() -> None:
    assert hypoprobe.ConfigurationError is errors.ConfigurationError
    assert hypoprobe.analysis.NoDataError is errors.NoDataError
    assert hypoprobe.sources.SourceError is errors.SourceError
    assert hypoprobe.cli.UsageError is errors.UsageError
    for name in ("EXIT_OK", "EXIT_INTERNAL", "EXIT_USAGE", "EXIT_SOURCE", "EXIT_NO_DATA"):
        assert getattr(hypoprobe.cli, name) == getattr(errors, name)
    assert hypoprobe.sources.EXIT_UNREACHABLE == errors.EXIT_SOURCE
    assert (errors.EXIT_OK, errors.EXIT_INTERNAL, errors.EXIT_USAGE) == (0, 1, 2)
    assert (errors.EXIT_SOURCE, errors.EXIT_NO_DATA, errors.EXIT_UNMEASURED) == (3, 4, 5)


def test_the_cli_exits_with_the_errors_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hypoprobe._cli import check

    def raise_no_data(_args: object) -> int:
        raise errors.NoDataError("nothing to judge; pass a snapshot with requests")

    monkeypatch.setattr(check, "run", raise_no_data)
    assert hypoprobe.cli.main(["check", "--config", "h.toml"]) == errors.EXIT_NO_DATA
    assert "hypoprobe: nothing to judge" in capsys.readouterr().err
