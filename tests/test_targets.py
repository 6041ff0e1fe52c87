"""Probe target health: every target's state is known, exported, and honest.

A target named in a TOML file is ``pending`` until its module is imported, then
``attached`` or ``failed`` with the reason; ``unload`` leaves it ``detached``. A typo in a
module path is found when the nearest importable ancestor is imported (``find_spec`` on the
next component), logged once with ``file:line``. A target whose top-level package is not on
``sys.path`` yet stays pending and is probed once the package turns up (gunicorn puts the
application's directory on the path after hypoprobe is imported). ``settle_pending()``
fails what never turned up. Every state is in the snapshot and on ``/metrics``.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.registry import Collector

import hypoprobe
from apps import AppFactory, app_factory, toml
from hypoprobe import _load
from hypoprobe._core import _targets
from hypoprobe.model import Snapshot, TargetState
from hypoprobe.prometheus import families


@pytest.fixture
def make_app(tmp_path: Path, unique_id: Callable[[str], str]) -> Iterator[AppFactory]:
    yield from app_factory(tmp_path, unique_id)


@pytest.fixture
def config(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    def write(text: str) -> Path:
        path = tmp_path / "perf.toml"
        path.write_text(text)
        return path

    yield write
    hypoprobe.unload()


def _states(hid: str) -> dict[str, tuple[str, str]]:
    return {
        t.target: (t.state, t.reason) for t in hypoprobe.snapshot().targets if t.hypothesis == hid
    }


def test_a_module_typo_fails_when_its_parent_package_is_imported(
    config: Callable[[str], Path],
    make_app: AppFactory,
    unique_id: Callable[[str], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    pkg = make_app()
    hid = unique_id("PERF")
    typo, good = f"{pkg}.modles:User.followers_count", f"{pkg}.models:User.followers_count"
    path = config(toml(hid, "GET /explore", [typo, good]))
    hypoprobe.load(path)  # the package is not imported: nothing can be known yet
    assert _states(hid) == {typo: ("pending", ""), good: ("pending", "")}

    with caplog.at_level(logging.ERROR, logger="hypoprobe"):
        importlib.import_module(pkg)
        importlib.import_module(f"{pkg}.models")
        importlib.import_module(pkg)  # again: no second log line

    assert _states(hid) == {
        typo: ("failed", f"no module named '{pkg}.modles'"),
        good: ("attached", ""),
    }
    errors = [r.getMessage() for r in caplog.records if typo in r.getMessage()]
    assert errors == [
        f"hypoprobe: {path}:7: probe target {typo!r}: no module named '{pkg}.modles'; not probed"
    ]


def test_an_attribute_typo_fails_on_import_with_the_reason(
    config: Callable[[str], Path], make_app: AppFactory, unique_id: Callable[[str], str]
) -> None:
    pkg = make_app()
    hid = unique_id("PERF")
    target = f"{pkg}.models:User.folowers_count"
    hypoprobe.load(config(toml(hid, "GET /explore", [target])))
    importlib.import_module(f"{pkg}.models")
    assert _states(hid) == {target: ("failed", "type User has no attribute 'folowers_count'")}


def test_a_package_not_on_the_path_yet_stays_pending_and_is_probed_when_it_turns_up(
    config: Callable[[str], Path], make_app: AppFactory, unique_id: Callable[[str], str]
) -> None:
    pkg = make_app(on_path=False)  # as under gunicorn: the app's directory comes later
    hid = unique_id("PERF")
    target = f"{pkg}.models:helper"
    hypoprobe.load(config(toml(hid, "GET /explore", [target])))  # no error: pending
    assert _states(hid) == {target: ("pending", "")}

    make_app.put_on_path()
    models = importlib.import_module(f"{pkg}.models")

    assert _states(hid) == {target: ("attached", "")}
    assert hasattr(models.helper, "__wrapped__")


def test_settle_pending_fails_what_the_application_never_imported(
    config: Callable[[str], Path], make_app: AppFactory, unique_id: Callable[[str], str]
) -> None:
    pkg = make_app()
    hid = unique_id("PERF")
    never, missing = f"{pkg}.models:helper", f"hypoprobe_no_such_{hid.replace('-', '_')}:f"
    path = config(toml(hid, "GET /explore", [never, missing]))
    hypoprobe.load(path)

    settled = _load.settle_pending()

    assert settled == [f"{path}:7: {never}", f"{path}:8: {missing}"]
    states = _states(hid)
    assert states[never] == (
        "failed",
        f"{pkg}.models was never imported: the application finished starting without it",
    )
    assert states[missing] == ("failed", f"no module named '{missing.partition(':')[0]}'")
    assert _load.settle_pending() == []  # once


def test_a_module_imported_after_settling_is_still_probed(
    config: Callable[[str], Path], make_app: AppFactory, unique_id: Callable[[str], str]
) -> None:
    # A lazy import (inside a view, at the first request of its route) comes after the
    # application "started": the target was settled failed, and must attach now.
    pkg = make_app()
    hid = unique_id("PERF")
    target = f"{pkg}.models:helper"
    hypoprobe.load(config(toml(hid, "GET /explore", [target])))
    _load.settle_pending()
    assert _states(hid)[target][0] == "failed"

    models = importlib.import_module(f"{pkg}.models")

    assert _states(hid) == {target: ("attached", "")}
    assert hasattr(models.helper, "__wrapped__")


def test_a_target_patched_after_a_from_import_says_so(
    config: Callable[[str], Path], make_app: AppFactory, unique_id: Callable[[str], str]
) -> None:
    pkg = make_app()
    importlib.import_module(f"{pkg}.views")  # takes `helper` by from-import
    hid = unique_id("PERF")
    target, method = f"{pkg}.models:helper", f"{pkg}.models:User.feed"
    hypoprobe.load(config(toml(hid, "GET /explore", [target, method])))

    states = _states(hid)
    state, reason = states[target]
    assert state == "attached"
    assert reason.startswith(f"late: {pkg}.models was imported before the target was patched")
    assert f"{pkg}.views:bound_helper still call the original" in reason
    # A method is looked up on its class at each call: late, but nothing holds the original.
    assert states[method] == (
        "attached",
        f"late: {pkg}.models was imported before the target was patched",
    )


def test_unload_leaves_targets_detached(
    config: Callable[[str], Path], make_app: AppFactory, unique_id: Callable[[str], str]
) -> None:
    pkg = make_app()
    hid = unique_id("PERF")
    target = f"{pkg}.models:helper"
    hypoprobe.load(config(toml(hid, "GET /explore", [target])))
    importlib.import_module(f"{pkg}.models")
    hypoprobe.unload()
    assert _states(hid) == {target: ("detached", "unloaded")}


def test_decorator_with_and_sql_probes_are_attached_code_targets(
    unique_id: Callable[[str], str],
) -> None:
    hid = unique_id("PERF")

    @hypoprobe.probe(hid)
    def decorated() -> None:
        pass

    with hypoprobe.probe(hid, name="block"):
        pass

    import sqlite3

    from hypoprobe.integrations import dbapi

    conn = dbapi.instrument(sqlite3.connect(":memory:"), hid, match=r"select", name="sql")
    conn.execute("select 1").fetchall()
    mine = {t.target: (t.kind, t.state) for t in _targets.all_targets() if t.hypothesis_id == hid}
    assert mine == {
        decorated.__qualname__: ("code", "attached"),
        "block": ("code", "attached"),
        "sql": ("code", "attached"),
        "fetch: sql": ("code", "attached"),
    }
    # Code targets are attached by construction: their probe series are their state.
    assert not [t for t in hypoprobe.snapshot().targets if t.hypothesis == hid]


def test_states_are_in_the_snapshot_json_and_on_metrics(
    config: Callable[[str], Path], make_app: AppFactory, unique_id: Callable[[str], str]
) -> None:
    pkg = make_app()
    hid = unique_id("PERF")
    typo = f"{pkg}.modles:User.feed"
    hypoprobe.load(config(toml(hid, "GET /explore", [typo])))
    importlib.import_module(pkg)

    snap = hypoprobe.snapshot()
    mine = tuple(t for t in snap.targets if t.hypothesis == hid)
    want = (TargetState(hid, typo, "config", "failed", f"no module named '{pkg}.modles'", 1),)
    assert mine == want
    assert Snapshot.from_json(snap.to_json()).targets == snap.targets

    class Mine(Collector):
        def collect(self):  # type: ignore[no-untyped-def]
            from dataclasses import replace

            yield from families(replace(snap, targets=mine))

    registry = CollectorRegistry()
    registry.register(Mine())
    text = generate_latest(registry).decode()
    line = (
        f'hypoprobe_probe_target_state{{hypothesis="{hid}",kind="config",'
        f'reason="no module named \'{pkg}.modles\'",state="failed",target="{typo}"}} 1.0'
    )
    assert line in text.splitlines()


def test_states_after_fork_are_the_childs_too(
    config: Callable[[str], Path], make_app: AppFactory, unique_id: Callable[[str], str]
) -> None:
    import os

    pkg = make_app()
    hid = unique_id("PERF")
    target = f"{pkg}.models:helper"
    hypoprobe.load(config(toml(hid, "GET /explore", [target])))
    importlib.import_module(f"{pkg}.models")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its storage starts from zero, its target is still attached
        try:
            states = [
                (t.state, t.processes) for t in hypoprobe.snapshot().targets if t.hypothesis == hid
            ]
            os.write(write, repr(states).encode())
        finally:
            os._exit(0)
    os.close(write)
    got = os.read(read, 1000).decode()
    os.waitpid(pid, 0)
    assert got == "[('attached', 1)]"


# ----------------------------------------------------------- load() raises one error only


LAZY = '''\
class _Proxy:
    """Like werkzeug's LocalProxy outside a request: every look raises RuntimeError."""

    def __getattr__(self, name):
        raise RuntimeError("Working outside of application context.")

    def __repr__(self):
        raise RuntimeError("Working outside of application context.")


current_app = _Proxy()
request = _Proxy()


class _Meta(type):
    def __getattr__(cls, name):
        raise RuntimeError(f"lazy attribute {name} needs a configured app")


class Model(metaclass=_Meta):
    pass
'''


@pytest.fixture
def lazy_module(tmp_path: Path, unique_id: Callable[[str], str]) -> Iterator[str]:
    name = "lazy_" + unique_id("").replace("-", "_").lower()
    (tmp_path / f"{name}.py").write_text(LAZY)
    sys.path.insert(0, str(tmp_path))
    importlib.import_module(name)
    yield name
    sys.path.remove(str(tmp_path))
    sys.modules.pop(name, None)


@pytest.mark.parametrize(
    ("attr", "reason"),
    [
        # The last name is looked up statically (the proxy's __getattr__ does not run); a
        # name on the way to it is a real lookup, and its RuntimeError is the reason.
        ("current_app.name", "has no attribute 'name'"),
        ("request.args", "has no attribute 'args'"),
        ("Model.objects", "has no attribute 'objects'"),
        ("Model.objects.get", "RuntimeError: lazy attribute objects needs a configured app"),
    ],
)
def test_lazy_proxies_and_metaclasses_are_a_configuration_error(
    config: Callable[[str], Path],
    lazy_module: str,
    unique_id: Callable[[str], str],
    attr: str,
    reason: str,
) -> None:
    path = config(toml(unique_id("PERF"), "GET /x", [f"{lazy_module}:{attr}"]))
    with pytest.raises(hypoprobe.ConfigurationError) as info:
        hypoprobe.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}:7: probe target '{lazy_module}:{attr}'")
    assert reason in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        pytest.param("x = " + "[" * 500 + "]" * 500 + "\n", 1, "nested", id="deep-array"),
        pytest.param(
            "a = 1\nx = " + "{ a = " * 300 + "1" + " }" * 300, 2, "nested", id="deep-table"
        ),
        pytest.param('[[hypothesis]]\nid = "X-1"\nclaim = "c', 3, "Unterminated string", id="eof"),
        pytest.param(
            '[[hypothesis--]]\nid = "X-1"\n', 1, "unknown key 'hypothesis--'", id="dashes"
        ),
        pytest.param("hypothesis = 3\n", 1, "array of tables", id="not-an-array"),
    ],
)
def test_toml_errors_always_name_a_line(
    config: Callable[[str], Path], text: str, line: int, words: str
) -> None:
    path = config(text)
    with pytest.raises(hypoprobe.ConfigurationError) as info:
        hypoprobe.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: ")
    assert words in message
    assert "\n" not in message


@pytest.mark.parametrize("target", ["flask:current_app.name", "flask:request.args"])
def test_flasks_own_proxies_are_a_configuration_error(
    config: Callable[[str], Path], unique_id: Callable[[str], str], target: str
) -> None:
    pytest.importorskip("flask", reason="flask is in the test extras")
    path = config(toml(unique_id("PERF"), "GET /x", [target]))
    with pytest.raises(hypoprobe.ConfigurationError) as info:
        hypoprobe.load(path)
    assert str(info.value).startswith(f"{path}:7: probe target {target!r}: LocalProxy")
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------ load() fuzzing

_FRAGMENTS = st.sampled_from(
    [
        "[[hypothesis]]\n",
        "[[hypothesis--]]\n",
        "[hypothesis]\n",
        'id = "FZ-1"\n',
        "id = 3\n",
        'claim = "c"\n',
        'claim = "unterminated\n',
        'endpoint = "GET /x"\n',
        'endpoint = ["GET /a", "GET /b"]\n',
        "min_share = 0.5\n",
        "min_share = 2\n",
        'probes = ["hypoprobe_fuzz_nowhere.mod:f"]\n',
        'probes = ["os.path:join"]\n',
        'probes = ["json:loads", "json:loads"]\n',
        "probes = [1]\n",
        "observed = { probe_seconds = 1.2, endpoint_seconds = 1.5 }\n",
        "observed = { probe_seconds = -1 }\n",
        "expires = 2099-12-31\n",
        "x = [[[[[[[[[[\n",
        "[" * 200 + "\n",
        "{ a = " * 150 + "\n",
        '"""\n',
        "'''\n",
        "\x00\n",
        "= = =\n",
        "#comment\n",
    ]
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(parts=st.lists(st.one_of(_FRAGMENTS, st.text(max_size=40)), max_size=12))
def test_load_of_any_text_succeeds_or_raises_one_configuration_error(
    tmp_path: Path, parts: list[str]
) -> None:
    path = tmp_path / "fuzz.toml"
    path.write_text("".join(parts), encoding="utf-8", errors="surrogatepass")
    try:
        hypoprobe.load(path)
    except hypoprobe.ConfigurationError as exc:
        message = str(exc)
        assert message.startswith(f"{path}:"), message
        assert "\n" not in message, message
        line = message[len(str(path)) + 1 :].partition(":")[0]
        assert line.isdigit(), message
    except UnicodeEncodeError:
        return  # the text cannot even be written as UTF-8: not a file anybody has
    finally:
        hypoprobe.unload(path)


def test_a_method_of_a_built_in_type_is_a_configuration_error(
    config: Callable[[str], Path], unique_id: Callable[[str], str]
) -> None:
    path = config(toml(unique_id("PERF"), "GET /x", ["decimal:Decimal.quantize"]))
    with pytest.raises(hypoprobe.ConfigurationError) as info:
        hypoprobe.load(path)
    assert str(info.value) == (
        f"{path}:7: probe target 'decimal:Decimal.quantize': Decimal is a built-in or "
        "extension type, whose attributes cannot be replaced; name the code that calls it"
    )
