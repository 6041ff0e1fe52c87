"""The public surface: a sorted __all__, documented names with examples, stable signatures."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

import hypoprobe

PUBLIC = [name for name in hypoprobe.__all__ if name != "__version__"]


def test_all_is_sorted_and_complete() -> None:
    assert hypoprobe.__all__ == sorted(hypoprobe.__all__)
    assert len(set(hypoprobe.__all__)) == len(hypoprobe.__all__)
    for name in hypoprobe.__all__:
        assert hasattr(hypoprobe, name), name
    expected = {
        "Config",
        "ConfigurationError",
        "HypoprobeError",
        "Hypothesis",
        "Observation",
        "Snapshot",
        "SnapshotError",
        "configure",
        "customer",
        "endpoint",
        "hypothesis",
        "probe",
        "snapshot",
        "survey",
    }
    assert expected <= set(PUBLIC)


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_has_a_docstring_with_an_example(name: str) -> None:
    doc = inspect.getdoc(getattr(hypoprobe, name))
    assert doc, f"hypoprobe.{name} has no docstring"
    assert "Example" in doc or ">>>" in doc, f"hypoprobe.{name}'s docstring shows no example"


@pytest.mark.parametrize("name", PUBLIC)
def test_docstring_examples_name_only_things_that_exist(name: str) -> None:
    doc = inspect.getdoc(getattr(hypoprobe, name)) or ""
    for ref in re.findall(r"\bhypoprobe\.([A-Za-z_]\w*)", doc):
        assert hasattr(hypoprobe, ref), f"hypoprobe.{name}'s docstring uses hypoprobe.{ref}"


def test_package_docstring_has_an_example_and_version_is_set() -> None:
    assert hypoprobe.__doc__
    assert "Example" in hypoprobe.__doc__
    assert isinstance(hypoprobe.__version__, str)
    assert hypoprobe.__version__


def test_package_is_typed() -> None:
    assert (Path(hypoprobe.__file__).parent / "py.typed").is_file()


def test_signatures_of_the_contract() -> None:
    params = inspect.signature(hypoprobe.hypothesis).parameters
    assert list(params)[:9] == [
        "id",
        "claim",
        "endpoint",
        "min_share",
        "observed",
        "slow_threshold",
        "owner",
        "ticket",
        "expires",
    ]
    assert params["claim"].kind is inspect.Parameter.KEYWORD_ONLY
    probe_params = inspect.signature(hypoprobe.probe).parameters
    assert list(probe_params)[:2] == ["hypothesis_id", "name"]
    assert probe_params["name"].default is None
    assert list(inspect.signature(hypoprobe.endpoint).parameters)[:1] == ["name"]
    seen = hypoprobe.Observation(probe_seconds=1.2, endpoint_seconds=1.5)
    assert seen == hypoprobe.Observation(1.2, 1.5)


def test_error_tree() -> None:
    assert issubclass(hypoprobe.ConfigurationError, hypoprobe.HypoprobeError)
    assert issubclass(hypoprobe.ConfigurationError, ValueError)
    assert issubclass(hypoprobe.SnapshotError, hypoprobe.HypoprobeError)
    assert issubclass(hypoprobe.HypoprobeError, Exception)


def test_importing_the_snapshot_module_keeps_the_snapshot_function() -> None:
    module = importlib.import_module("hypoprobe.snapshot")
    assert module.Snapshot is hypoprobe.Snapshot
    assert callable(hypoprobe.snapshot)
    assert isinstance(hypoprobe.snapshot(), hypoprobe.Snapshot)
