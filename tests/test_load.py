"""Probes without code changes: hypoprobe.load(path), unload(), and HYPOPROBE_CONFIG.

A performance team names the suspect code by import path in a TOML file. These tests
show that the targets are probed also in modules imported *after* the file was loaded,
that unload() puts the original attributes back and disarms pending import hooks, and
that every mistake in the file is a ConfigurationError naming the file and the line.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import hypoprobe
from hypoprobe import ConfigurationError
from loadtargets import eager  # imported before any load(): probed eagerly

TESTS_DIR = Path(__file__).parent


def _hypothesis_toml(hid: str, endpoint: str, probes: list[str], extra: str = "") -> str:
    targets = ", ".join(f'"{p}"' for p in probes)
    return textwrap.dedent(
        f"""\
        # perf team's hypotheses
        [[hypothesis]]
        id = "{hid}"
        claim = "the campaign queries dominate {endpoint}"
        endpoint = "{endpoint}"
        min_share = 0.5
        observed = {{ probe_seconds = 1.2, endpoint_seconds = 1.5 }}
        owner = "perf-team"
        expires = 2099-12-31
        {extra}
        probes = [{targets}]
        """
    )


@pytest.fixture
def config(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Write a TOML file; whatever the test loads is unloaded afterwards."""
    written: list[Path] = []

    def write(text: str) -> Path:
        path = tmp_path / f"hypoprobe-{len(written)}.toml"
        path.write_text(text)
        written.append(path)
        return path

    yield write
    hypoprobe.unload()


@pytest.fixture
def fresh_module() -> Iterator[Callable[[str], str]]:
    """Name a target module that must not be imported yet; forget it after the test."""
    names: list[str] = []

    def fresh(name: str) -> str:
        assert name not in sys.modules, f"{name} was imported before the test: it must not be"
        names.append(name)
        return name

    yield fresh
    for name in names:
        sys.modules.pop(name, None)


def _calls(hid: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in hypoprobe.snapshot().probes:
        if p.hypothesis == hid:
            counts[p.probe] = counts.get(p.probe, 0) + p.duration.count
    return {k: v for k, v in counts.items() if v}


# ----------------------------------------------------------------------------- probing


def test_module_imported_after_load_is_probed_and_unload_restores_it(
    config: Callable[[str], Path],
    fresh_module: Callable[[str], str],
    unique_id: Callable[[str], str],
) -> None:
    hid, ep = unique_id("PERF"), unique_id("GET /campaigns")
    module = fresh_module("loadtargets.campaigns")
    path = config(
        _hypothesis_toml(
            hid,
            ep,
            [
                f"{module}:CampaignQuery.list_for_account",
                f"{module}:CampaignQuery.normalise",
                f"{module}:CampaignQuery.for_account",
                f"{module}:count_subscribers",
                f"{module}:fetch_remote",
            ],
        )
    )

    [hyp] = hypoprobe.load(path)
    assert (hyp.id, hyp.endpoints) == (hid, (ep,))
    assert hyp.observed_share == pytest.approx(0.8)
    assert hyp.owner == "perf-team"
    assert module not in sys.modules  # loading did not import the application's code

    from loadtargets import campaigns  # the application imports its module later

    with hypoprobe.endpoint(ep):
        query = campaigns.CampaignQuery.for_account(7)
        assert query.list_for_account() == ["campaign-7-0", "campaign-7-1", "campaign-7-2"]
        assert campaigns.CampaignQuery.normalise("  Spring ") == "spring"
        assert campaigns.count_subscribers(3) == 30
        with pytest.raises(ValueError, match="no such account"):
            campaigns.count_subscribers(-1)
        assert asyncio.run(campaigns.fetch_remote(1)) == 2

    assert _calls(hid) == {
        "CampaignQuery.list_for_account": 1,
        "CampaignQuery.normalise": 1,
        "CampaignQuery.for_account": 1,
        "count_subscribers": 2,
        "fetch_remote": 1,
    }
    # The probed versions keep what callers can see of the originals.
    assert inspect.iscoroutinefunction(campaigns.fetch_remote)
    assert isinstance(inspect.getattr_static(campaigns.CampaignQuery, "normalise"), staticmethod)
    assert campaigns.CampaignQuery.list_for_account.__doc__ == "Return the account's campaigns."

    hypoprobe.unload()

    for restored in (
        campaigns.count_subscribers,
        campaigns.fetch_remote,
        campaigns.CampaignQuery.list_for_account,
    ):
        assert not hasattr(restored, "__wrapped__")
        assert restored.__code__.co_filename == campaigns.__file__
    assert campaigns.count_subscribers(1) == 10
    campaigns.CampaignQuery(1).list_for_account()
    assert _calls(hid)["count_subscribers"] == 2  # no longer probed
    assert _calls(hid)["CampaignQuery.list_for_account"] == 1


def test_already_imported_module_is_probed_at_once_and_restored_exactly(
    config: Callable[[str], Path], unique_id: Callable[[str], str]
) -> None:
    hid = unique_id("PERF")
    original_render = eager.render
    path = config(
        _hypothesis_toml(
            hid,
            unique_id("GET /page"),
            ["loadtargets.eager:render", "loadtargets.eager:Child.greet"],
        )
    )
    hypoprobe.load(path)

    assert eager.render is not original_render
    assert eager.render("x") == "<h1>x</h1>"
    assert eager.Child().greet() == "hello"
    assert eager.Base().greet() == "hello"  # the base class is untouched
    assert _calls(hid) == {"render": 1, "Base.greet": 1}

    hypoprobe.unload()
    assert eager.render is original_render
    assert "greet" not in vars(eager.Child)  # the shadowing attribute is gone again
    eager.render("y")
    assert _calls(hid) == {"render": 1, "Base.greet": 1}


def test_unload_disarms_hooks_of_modules_not_imported_yet(
    config: Callable[[str], Path],
    fresh_module: Callable[[str], str],
    unique_id: Callable[[str], str],
) -> None:
    hid = unique_id("PERF")
    module = fresh_module("loadtargets.pending")
    hypoprobe.load(config(_hypothesis_toml(hid, unique_id("GET /x"), [f"{module}:work"])))
    hypoprobe.unload()

    from loadtargets import pending

    assert not hasattr(pending.work, "__wrapped__")
    assert pending.work() == 42
    assert _calls(hid) == {}


def test_loading_a_file_again_replaces_its_previous_load(
    config: Callable[[str], Path], unique_id: Callable[[str], str]
) -> None:
    hid = unique_id("PERF")
    path = config(_hypothesis_toml(hid, unique_id("GET /x"), ["loadtargets.eager:render"]))
    hypoprobe.load(path)
    hypoprobe.load(path)  # e.g. after editing the file: no double probing
    eager.render("z")
    assert _calls(hid) == {"render": 1}


def test_a_target_probed_by_another_file_is_refused(
    config: Callable[[str], Path], unique_id: Callable[[str], str]
) -> None:
    first = config(
        _hypothesis_toml(unique_id("A"), unique_id("GET /x"), ["loadtargets.eager:render"])
    )
    second = config(
        _hypothesis_toml(unique_id("B"), unique_id("GET /x"), ["loadtargets.eager:render"])
    )
    hypoprobe.load(first)
    with pytest.raises(ConfigurationError, match=rf"{second}:11: .*already probed by {first}:11"):
        hypoprobe.load(second)


def test_deferred_target_that_does_not_exist_is_logged_with_file_and_line(
    config: Callable[[str], Path],
    fresh_module: Callable[[str], str],
    unique_id: Callable[[str], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    module = fresh_module("loadtargets.typo")
    path = config(_hypothesis_toml(unique_id("PERF"), unique_id("GET /x"), [f"{module}:reel_name"]))
    hypoprobe.load(path)  # the module is not imported yet: nothing to check against

    with caplog.at_level(logging.ERROR, logger="hypoprobe"):
        from loadtargets import typo  # the import itself must still succeed

    assert typo.real_name() == 1
    assert f"{path}:11: " in caplog.text
    assert "has no attribute 'reel_name'" in caplog.text


# ------------------------------------------------------------------------------ errors


GOOD = """\
[[hypothesis]]
id = "{hid}"
claim = "c"
endpoint = ["GET /a", "GET /b"]
min_share = 0.5
probes = ["loadtargets.eager:render"]
"""


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        pytest.param('[[hypothesis]]\nid = "X-1"\nclaim = "c\n', 3, "invalid TOML", id="toml"),
        pytest.param(
            GOOD.replace('claim = "c"', 'claim = "c"\ncolour = "red"'),
            4,
            "unknown field 'colour'",
            id="unknown-field",
        ),
        pytest.param(
            GOOD.replace("min_share = 0.5", "min_share = 1.5"),
            5,
            "field 'min_share'.*in \\(0, 1\\]",
            id="min-share",
        ),
        pytest.param(
            GOOD.replace("min_share = 0.5", "min_share = 0.5\nobserved = { probe_seconds = 2 }"),
            6,
            "field 'observed'",
            id="observed-fields",
        ),
        pytest.param(
            GOOD.replace(
                "min_share = 0.5",
                "min_share = 0.5\nobserved = { probe_seconds = 2, endpoint_seconds = 1 }",
            ),
            6,
            "cannot exceed endpoint_seconds",
            id="observed-values",
        ),
        pytest.param(
            GOOD.replace('endpoint = ["GET /a", "GET /b"]', "endpoint = 3"),
            4,
            "field 'endpoint'",
            id="endpoint",
        ),
        pytest.param(GOOD.replace('id = "{hid}"', 'id = "not a ticket"'), 2, "field 'id'", id="id"),
        pytest.param(
            GOOD.replace('claim = "c"\n', ""), 1, "missing required field 'claim'", id="missing"
        ),
        pytest.param(GOOD + "\n" + GOOD, 9, "duplicate hypothesis id .* line 1", id="duplicate"),
        pytest.param(
            GOOD.replace("loadtargets.eager:render", "loadtargets.nosuch:render"),
            6,
            "no module named 'loadtargets.nosuch'",
            id="unknown-module",
        ),
        pytest.param(
            GOOD.replace("loadtargets.eager:render", "loadtargets.eager:rendr"),
            6,
            "has no attribute 'rendr'",
            id="unknown-attribute",
        ),
        pytest.param(
            GOOD.replace("loadtargets.eager:render", "loadtargets.eager:Nope.greet"),
            6,
            "has no attribute 'Nope'",
            id="unknown-class",
        ),
        pytest.param(
            GOOD.replace("loadtargets.eager:render", "loadtargets.eager:RETRIES"),
            6,
            "not a function",
            id="not-callable",
        ),
        pytest.param(
            GOOD.replace("loadtargets.eager:render", "loadtargets.eager:Child"),
            6,
            "not a function",
            id="a-class",
        ),
        pytest.param(
            GOOD.replace("loadtargets.eager:render", "loadtargets/eager.py"),
            6,
            "not an import path",
            id="target-syntax",
        ),
        pytest.param(
            GOOD.replace(
                'probes = ["loadtargets.eager:render"]',
                'probes = [\n  "loadtargets.eager:render",\n  "loadtargets.eager:render",\n]',
            ),
            8,
            "listed twice",
            id="duplicate-target",
        ),
        pytest.param('title = "x"\n' + GOOD, 1, "unknown key 'title'", id="top-level-key"),
    ],
)
def test_bad_files_raise_errors_naming_file_and_line(
    config: Callable[[str], Path],
    unique_id: Callable[[str], str],
    text: str,
    line: int,
    message: str,
) -> None:
    hid = unique_id("PERF")
    path = config(text.replace("{hid}", hid))
    with pytest.raises(ConfigurationError, match=rf"^{path}:{line}: .*{message}"):
        hypoprobe.load(path)
    # Nothing was applied: the file is validated as a whole first.
    assert not hasattr(eager.render, "__wrapped__")
    assert hypoprobe.snapshot().hypothesis(hid) is None


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigurationError, match=rf"^{missing}: cannot read"):
        hypoprobe.load(missing)


def test_conflict_with_a_registered_hypothesis_names_the_line(
    config: Callable[[str], Path], unique_id: Callable[[str], str]
) -> None:
    hid = unique_id("PERF")
    hypoprobe.hypothesis(hid, claim="something else", endpoint="GET /a", min_share=0.5)
    path = config(GOOD.replace("{hid}", hid))
    with pytest.raises(ConfigurationError, match=rf"^{path}:1: .*different definition"):
        hypoprobe.load(path)


# ------------------------------------------------------------------------ environment


def _import_with_env(config_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HYPOPROBE_CONFIG": str(config_path)}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS_DIR), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_hypoprobe_config_is_loaded_at_import(tmp_path: Path) -> None:
    path = tmp_path / "perf.toml"
    path.write_text(_hypothesis_toml("ENV-1", "GET /env", ["loadtargets.fromenv:handler"]))
    code = textwrap.dedent(
        """\
        import hypoprobe
        from loadtargets import fromenv
        with hypoprobe.endpoint("GET /env"):
            assert fromenv.handler() == "ok"
        snap = hypoprobe.snapshot()
        print(snap.hypothesis("ENV-1").claim)
        print([(p.probe, p.duration.count) for p in snap.probes if p.duration.count])
        """
    )
    done = _import_with_env(path, code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "the campaign queries dominate GET /env",
        "[('handler', 1)]",
    ]


def test_bad_hypoprobe_config_is_logged_and_the_import_succeeds(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(GOOD.replace("{hid}", "ENV-2").replace("min_share = 0.5", "min_share = 7"))
    done = _import_with_env(path, "import hypoprobe; print(hypoprobe.snapshot().hypotheses)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "()"
    assert f"{path}:5: field 'min_share'" in done.stderr
