"""Fuzzing the ``hypoprobe`` command (report, compare, snapshot, rules, dashboard, check):
generated argument vectors over generated and broken snapshot files, unreachable and
misbehaving servers, and junk values, run in-process through ``hypoprobe.cli.main``. Every
outcome is a documented exit code (0, 2, 3, 4, 5) with one line on stderr (argparse's usage
errors: usage, then one error line), never a traceback or exit 1.

Every server is local and answers at once (or refuses), so no case waits for a window.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from readside import fixed_json, recorded_document, run_cli, serving
from servers import free_port


def _files(root: Path) -> dict[str, str]:
    good = recorded_document()
    other = recorded_document()
    other["created_at"] += 3600
    hostile = recorded_document()
    hostile["hypotheses"][0]["claim"] = "<script>x</script>\x1b[2J\x07 | [a](b)"
    hostile["endpoints"][0]["endpoint"] = "GET /\x9b\u202e"
    inf_moment = recorded_document()
    inf_moment["moments"][0]["probe_seconds_squared"] = 1e308
    docs: dict[str, Any] = {
        "good.json": good,
        "other.json": other,
        "hostile.json": hostile,
        "huge.json": inf_moment,
        "empty.json": "",
        "deep.json": "[" * 5000 + "]" * 5000,
        "inf.json": json.dumps(good).replace('"created_at": ', '"created_at": Infinity, "x": '),
        "schema.json": {"schema": "hypoprobe.snapshot/2"},
        "nohyp.json": {**good, "hypotheses": []},
    }
    out = {}
    for name, doc in docs.items():
        path = root / name
        path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
        out[name] = str(path)
    (root / "latin1.json").write_bytes(b'{"source": "caf\xe9"}')
    out["latin1.json"] = str(root / "latin1.json")
    out["missing.json"] = str(root / "missing.json")
    out["dir"] = str(root)
    out["/dev/null"] = "/dev/null"
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, list[str]]]:
    """The pools argument values are drawn from. The working directory is a scratch one
    meanwhile: a generated ``-o`` may name any file."""
    root = tmp_path_factory.mktemp("cli-fuzz")
    files = _files(root)
    wrong_shape = {"status": "success", "data": {"resultType": "vector", "result": 5}}
    with (
        pytest.MonkeyPatch.context() as patch,
        serving(fixed_json(wrong_shape)) as prom,
        serving(fixed_json([1, 2])) as junk,
    ):
        patch.chdir(tmp_path_factory.mktemp("cli-fuzz-cwd"))
        closed = f"http://127.0.0.1:{free_port()}"
        yield {
            "files": list(files.values()),
            "urls": [
                closed,
                f"{closed}/metrics",
                prom.url,
                f"{junk.url}/metrics",
                "http://[::1/x",
                "127.0.0.1:99999",
                "ftp://example.org/",
                "",
                "http://\x1b[2J",
            ],
            "outputs": [
                str(root / "out.txt"),
                "/dev/full",
                str(root),
                "-",
                str(root / "no" / "such" / "dir" / "out"),
            ],
        }


_WINDOWS = ["1h", "60s", "1h30m", "0", "-5s", "1e10", "inf", "nan", "5x", "", "1e400", "3653d"]
_TIMES = ["now", "1700000000", "2026-11-23T14:00:00Z", "inf", "nan", "1e20", "-1", "x", ""]
_FORMATS = ["table", "markdown", "json", "html", "xml", ""]
_IDS = ["REL-READ", "PERF-404", "\x1b[2J", "", "a" * 300]
_SHARES = ["REL-READ=0.3", "X=nan", "X=inf", "X=0", "=", "X=1e400", "X=0.5=1"]
_COUNTS = ["100", "-1", "0", "1e400", "99999999999999999999999", ""]
_JUNK = ["--", "-", "--nope", "-o", "--format", "--snapshot", "--window", "\x00", "é"]


@st.composite
def argvs(draw: st.DrawFn, world: dict[str, list[str]]) -> list[str]:
    command = draw(
        st.sampled_from(["report", "compare", "snapshot", "rules", "dashboard", "check"])
    )
    files = st.sampled_from(world["files"])
    urls = st.sampled_from(world["urls"])
    text = st.text(max_size=12)
    parts: list[list[str]] = []
    if command == "compare" and draw(st.booleans()):
        parts.append(draw(st.lists(files, max_size=3)))
    options: dict[str, st.SearchStrategy[list[str]]] = {
        "--snapshot": st.lists(files, min_size=1, max_size=3),
        "--metrics-url": st.lists(urls, min_size=1, max_size=3),
        "--prometheus": st.lists(urls, min_size=1, max_size=1),
        "--window": st.lists(st.one_of(st.sampled_from(_WINDOWS), text), min_size=1, max_size=1),
        "--at": st.lists(st.one_of(st.sampled_from(_TIMES), text), min_size=1, max_size=1),
        "--before": st.lists(st.sampled_from(_TIMES), min_size=1, max_size=1),
        "--after": st.lists(st.sampled_from(_TIMES), min_size=1, max_size=1),
        "--format": st.lists(st.sampled_from(_FORMATS), min_size=1, max_size=1),
        "--hypothesis": st.lists(st.sampled_from(_IDS), min_size=1, max_size=2),
        "--endpoint": st.lists(st.sampled_from(["GET /reliability", "GET /x", ""]), max_size=1),
        "-o": st.lists(st.sampled_from(world["outputs"]), min_size=1, max_size=1),
        # rules, dashboard and check (never --import: it runs the named module's code)
        "--alerts": st.just([]),
        "--fail-on-unmeasured": st.just([]),
        "--config": st.lists(files, min_size=1, max_size=1),
        "--min-share": st.lists(st.one_of(st.sampled_from(_SHARES), text), min_size=1, max_size=1),
        "--min-requests": st.lists(
            st.one_of(st.sampled_from(_COUNTS), text), min_size=1, max_size=1
        ),
        "--title": st.lists(st.one_of(st.sampled_from(_IDS), text), min_size=1, max_size=1),
    }
    for name in draw(st.lists(st.sampled_from(sorted(options)), max_size=5)):
        parts.append([name, *draw(options[name])])
    if draw(st.integers(0, 4)) == 0:
        parts.append(draw(st.lists(st.one_of(st.sampled_from(_JUNK), text), max_size=2)))
    order = draw(st.permutations(range(len(parts))))
    return [command, *(token for i in order for token in parts[i])]


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_fuzz_every_argument_vector_ends_documented(
    world: dict[str, list[str]], data: st.DataObject
) -> None:
    argv = data.draw(argvs(world), label="argv")
    run_cli(*argv).assert_clean()


@pytest.mark.parametrize("fmt", ["table", "markdown", "json", "html"])
def test_every_file_of_the_pool_ends_documented(world: dict[str, list[str]], fmt: str) -> None:
    for path in world["files"]:
        run_cli("report", "--snapshot", path, "--format", fmt).assert_clean()
        run_cli("compare", world["files"][0], path, "--format", fmt).assert_clean()


def test_the_pool_is_not_all_errors(world: dict[str, list[str]]) -> None:
    """The fuzz must reach the renderers, not only the argument checks."""
    ok = [p for p in world["files"] if run_cli("report", "--snapshot", p).code == 0]
    assert len(ok) >= 3, ok
    doc = json.loads(run_cli("report", "--snapshot", ok[0], "--format", "json").out)
    assert math.isfinite(doc["created_at"])
