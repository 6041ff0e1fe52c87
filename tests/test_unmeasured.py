"""No confident verdict from a probe that did not run: UNMEASURED, in every format and
from every source (snapshot files, a live /metrics scrape; a real Prometheus is in
``test_unmeasured_prometheus.py``).

The stories are in ``unmeasured_story.py``: a module typo whose parent package was not
imported when the file was loaded, an attribute typo, an early-bound target, a probe on a
code path that never runs, and a hypothesis with one silent probe of two.
"""

from __future__ import annotations

import html
import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from prometheus_client import CollectorRegistry, Metric, start_http_server
from prometheus_client.registry import Collector

import hypoprobe
import unmeasured_story as story_mod
from apps import AppFactory, app_factory
from conftest import FakeClock
from hypoprobe import analysis
from hypoprobe.cli import EXIT_UNMEASURED, main
from hypoprobe.prometheus import families
from servers import free_port
from unmeasured_story import Story

SCHEMA = json.loads((Path(hypoprobe.__file__).parent / "render" / "report.schema.json").read_text())


@pytest.fixture(scope="module")
def recorded(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Story, hypoprobe.Snapshot]]:
    """The stories, recorded once for the module (a module-scoped fake clock and ids)."""
    import itertools
    import os

    counter = itertools.count(1)

    def unique(suffix: str = "") -> str:
        name = f"U{next(counter)}-{os.getpid()}-unmeasured"
        return f"{name}-{suffix}" if suffix else name

    tmp = tmp_path_factory.mktemp("unmeasured")
    previous = hypoprobe.configure().clock
    clock = FakeClock()
    hypoprobe.configure(clock=clock)
    factory = app_factory(tmp, unique)
    make_app = next(factory)
    try:
        story = story_mod.record(make_app, clock, unique, tmp)
        yield story, story_mod.only(hypoprobe.snapshot(), story)
    finally:
        hypoprobe.configure(clock=previous)
        for path in (tmp / "perf.toml", tmp / "late.toml"):
            hypoprobe.unload(path)
        next(factory, None)


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _flat(text: str) -> str:
    return " ".join(text.split())


def _check_every_format(
    capsys: pytest.CaptureFixture[str], story: Story, source: list[str]
) -> None:
    want = story_mod.expected(story)
    warning = story_mod.partial_warning(story)
    ids = sorted(want)

    code, out, err = _cli(capsys, "report", *source, "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    jsonschema.validate(doc, SCHEMA)
    got = {v["hypothesis"]: v for v in doc["verdicts"]}
    for hid, (verdict, sentence) in want.items():
        assert got[hid]["verdict"] == verdict, (hid, got[hid]["meaning"])
        if sentence is not None:
            assert got[hid]["meaning"] == sentence
            assert got[hid]["reason"] == sentence.removeprefix("UNMEASURED: ").removesuffix(".")
            assert got[hid]["warnings"] == []
        else:
            assert got[hid]["reason"] is None
    assert got[story.ids["partial"]]["warnings"] == [warning]

    code, table, err = _cli(capsys, "report", *source)
    assert code == 0, err  # an UNMEASURED verdict is a written report: exit 0
    flat = _flat(table)
    for hid, (verdict, sentence) in want.items():
        assert re.search(
            rf"^{re.escape(hid)} +{re.escape(story.endpoint)} +{verdict} ", table, re.M
        )
        if sentence:
            assert _flat(sentence) in flat
    assert _flat(f"warning: {warning}") in flat

    code, md, _ = _cli(capsys, "report", *source, "--format", "markdown")
    assert code == 0
    for hid, (verdict, sentence) in want.items():
        assert f"### {hid} · {story.endpoint}: **{verdict}**" in md
        if sentence:
            assert sentence in md
    assert f"- **Warning:** {warning}" in md

    code, page, _ = _cli(capsys, "report", *source, "--format", "html")
    assert code == 0
    for verdict, sentence in want.values():
        assert f'<span class="{verdict}">{verdict}</span>' in page
        if sentence:
            assert html.escape(sentence) in page
    assert f'<p class="warning">Warning: {html.escape(warning)}</p>' in page
    assert ".UNMEASURED {" in page

    code, _, _ = _cli(capsys, "report", *source, "--fail-on-unmeasured")
    assert code == EXIT_UNMEASURED
    code, _, _ = _cli(
        capsys, "report", *source, "--fail-on-unmeasured", "--hypothesis", story.ids["partial"]
    )
    assert code == 0
    assert ids  # every story was checked


def test_every_format_from_a_snapshot_file(
    recorded: tuple[Story, hypoprobe.Snapshot],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    story, snap = recorded
    path = tmp_path / "snap.json"
    path.write_text(snap.to_json())
    _check_every_format(capsys, story, ["--snapshot", str(path)])


@pytest.fixture(scope="module")
def metrics_url(recorded: tuple[Story, hypoprobe.Snapshot]) -> Iterator[str]:
    story, _ = recorded

    class Mine(Collector):
        def collect(self) -> Iterator[Metric]:
            yield from families(story_mod.only(hypoprobe.snapshot(), story))

    registry = CollectorRegistry()
    registry.register(Mine())
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_every_format_from_a_metrics_scrape(
    recorded: tuple[Story, hypoprobe.Snapshot],
    metrics_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    story, _ = recorded
    _check_every_format(capsys, story, ["--metrics-url", metrics_url])


def test_the_verdicts_numbers_are_still_computed_but_not_shown_as_a_share(
    recorded: tuple[Story, hypoprobe.Snapshot],
) -> None:
    story, snap = recorded
    rep = analysis.report(snap)
    by_id = {v.hypothesis: v for v in rep.verdicts}
    idle = by_id[story.ids["idle"]]
    assert (idle.verdict, idle.requests, idle.requests_with_probe) == ("UNMEASURED", 40, 0)
    assert idle.requests_needed is None
    partial = by_id[story.ids["partial"]]
    # Post.render is 4 ms of 17 ms; the claim needs 50%.
    assert partial.aggregate_share == pytest.approx(4 / 17)


def test_a_failed_target_is_unmeasured_even_when_its_other_probe_ran(
    make_app_fixture: AppFactory,
    fake_clock: FakeClock,
    unique_id: Callable[[str], str],
    tmp_path: Path,
) -> None:
    import importlib

    from apps import toml

    pkg = make_app_fixture()
    hid, endpoint = unique_id("PERF"), unique_id("GET /x")
    path = tmp_path / "p.toml"
    path.write_text(toml(hid, endpoint, [f"{pkg}.models:Post.render", f"{pkg}.models:nope"]))
    hypoprobe.load(path)
    try:
        models: Any = importlib.import_module(f"{pkg}.models")  # written by the app factory
        models.CLOCK = fake_clock
        for _ in range(40):
            with hypoprobe.endpoint(endpoint):
                fake_clock.advance_seconds(0.01)
                models.Post().render(0.01)
        (v,) = analysis.report(hypoprobe.snapshot(), hypotheses=[hid]).verdicts
    finally:
        hypoprobe.unload(path)
    assert v.verdict == "UNMEASURED"
    assert v.meaning == (
        f"UNMEASURED: target {pkg}.models:nope failed: module {pkg}.models has no attribute "
        "'nope', so "
        "the share misses the code it names; the probes that did run were called in 40 of "
        f"40 requests of {endpoint}."
    )


@pytest.fixture
def make_app_fixture(tmp_path: Path, unique_id: Callable[[str], str]) -> Iterator[AppFactory]:
    yield from app_factory(tmp_path, unique_id)


def test_a_hypothesis_no_probe_names_is_unmeasured(
    fake_clock: FakeClock, unique_id: Callable[[str], str]
) -> None:
    hid, endpoint = unique_id("PERF"), unique_id("GET /y")
    hypoprobe.hypothesis(hid, claim="c", endpoint=endpoint, min_share=0.5)
    for _ in range(40):
        with hypoprobe.endpoint(endpoint):
            fake_clock.advance_seconds(0.01)
    (v,) = analysis.report(hypoprobe.snapshot(), hypotheses=[hid]).verdicts
    assert v.verdict == "UNMEASURED"
    assert v.reason == (
        f"none of {hid}'s probes ran in 40 requests of {endpoint}; no probe names {hid} in "
        "any process that reported: add @hypoprobe.probe, a `with` block, a DB matcher or a "
        "TOML target for it"
    )


def test_a_probe_that_exists_but_never_ran_in_the_window_is_unmeasured(
    fake_clock: FakeClock, unique_id: Callable[[str], str]
) -> None:
    hid, endpoint = unique_id("PERF"), unique_id("GET /z")
    hypoprobe.hypothesis(hid, claim="c", endpoint=endpoint, min_share=0.5)

    @hypoprobe.probe(hid)
    def rarely() -> None:  # a legitimate code path that no request took in this window
        fake_clock.advance_seconds(0.5)

    for _ in range(40):
        with hypoprobe.endpoint(endpoint):
            fake_clock.advance_seconds(0.01)
    (v,) = analysis.report(hypoprobe.snapshot(), hypotheses=[hid]).verdicts
    assert v.verdict == "UNMEASURED"
    assert v.reason is not None
    assert v.reason.startswith(f"none of {hid}'s probes ran in 40 requests of {endpoint}; ")
    assert "attached but were never called: the code path did not run" in v.reason


def test_sqlalchemys_early_bound_loader_strategy_is_unmeasured_not_disproved(
    unique_id: Callable[[str], str], tmp_path: Path
) -> None:
    """The case that started it: SQLAlchemy binds its loader strategies into attribute
    callables at mapper configuration; a TOML target on the strategy's method attaches
    (late) and is never called."""
    sqlalchemy = pytest.importorskip("sqlalchemy", reason="sqlalchemy is in the test extras")
    from sqlalchemy import Column, ForeignKey, Integer, create_engine
    from sqlalchemy.orm import DeclarativeBase, Session, relationship, strategies

    loader = "LazyLoader" if hasattr(strategies, "LazyLoader") else "_LazyLoader"
    suffix = unique_id("").replace("-", "_")

    class Base(DeclarativeBase):
        pass

    # Columns spelled out: this module's annotations are strings (``from __future__``).
    class Post(Base):
        __tablename__ = f"posts_{suffix}"
        id = Column(Integer, primary_key=True)
        user_id = Column(Integer, ForeignKey(f"users_{suffix}.id"))

    class User(Base):
        __tablename__ = f"users_{suffix}"
        id = Column(Integer, primary_key=True)
        posts = relationship(Post)

    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        s.add(User(id=1, posts=[Post(id=1), Post(id=2)]))
        s.commit()
    with Session(engine) as s:  # the application has started: mappers are configured
        user = s.get(User, 1)
        assert user is not None
        assert len(user.posts) == 2

    hid, endpoint = unique_id("MB"), unique_id("GET /explore")
    target = f"sqlalchemy.orm.strategies:{loader}._load_for_state"
    path = tmp_path / "perf.toml"
    from apps import toml

    path.write_text(toml(hid, endpoint, [target]))
    hypoprobe.load(path)
    try:
        for _ in range(40):
            with hypoprobe.endpoint(endpoint), Session(engine) as s:
                user = s.get(User, 1)
                assert user is not None
                assert len(user.posts) == 2  # a lazy load per request
        (v,) = analysis.report(hypoprobe.snapshot(), hypotheses=[hid]).verdicts
    finally:
        hypoprobe.unload(path)
    assert sqlalchemy is not None
    assert v.verdict == "UNMEASURED"  # not "DISPROVED: ... is 0% (0-0%)"
    assert v.meaning == (
        f"UNMEASURED: none of {hid}'s probes ran in 40 requests of {endpoint}; target "
        f"{target} attached but never called in 40 requests (late: sqlalchemy.orm.strategies "
        "was imported before the target was patched): bound before hypoprobe was loaded? "
        "(docs/integrations.md#early-binding)."
    )


FLASK_APP = """\
import flask

app = flask.Flask(__name__)


@app.route("/explore")
def explore():
    return "ok"
"""


def test_a_flask_view_named_after_routing_is_unmeasured(
    unique_id: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Flask stores the view function in ``app.view_functions`` at import: patching the
    module attribute afterwards leaves the route calling the original."""
    pytest.importorskip("flask", reason="flask is in the test extras")
    import importlib

    from hypoprobe.integrations.flask import instrument_app

    name = "flaskviews_" + unique_id("").replace("-", "_").lower()
    (tmp_path / f"{name}.py").write_text(FLASK_APP)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module(name)
    instrument_app(module.app)
    hid = unique_id("PERF")
    path = tmp_path / "perf.toml"
    from apps import toml

    path.write_text(toml(hid, "GET /explore", [f"{name}:explore"]))
    hypoprobe.load(path)
    try:
        client = module.app.test_client()
        for _ in range(40):
            resp = client.get("/explore")
            assert resp.status_code == 200
            resp.close()  # the WSGI body is closed: the request's scope ends
        snap = hypoprobe.snapshot()
        (v,) = analysis.report(snap, hypotheses=[hid]).verdicts
    finally:
        hypoprobe.unload(path)
        sys.modules.pop(name, None)
    assert v.requests >= 40
    assert v.verdict == "UNMEASURED"
    assert f"target {name}:explore attached but never called in" in v.meaning
    assert "bound before hypoprobe was loaded?" in v.meaning


def test_pending_where_the_app_is_never_imported_is_no_warning_when_workers_attached(
    fake_clock: FakeClock, unique_id: Callable[[str], str]
) -> None:
    # hypoprobe run's launcher and a pre-fork master load the file but never import the
    # application: their targets stay pending while every worker has them attached.
    from dataclasses import replace

    from hypoprobe.model import TargetState

    hid, endpoint = unique_id("PERF"), unique_id("GET /w")
    hypoprobe.hypothesis(hid, claim="c", endpoint=endpoint, min_share=0.5)

    @hypoprobe.probe(hid, name="work")
    def work() -> None:
        fake_clock.advance_seconds(0.008)

    for _ in range(40):
        with hypoprobe.endpoint(endpoint):
            work()
            fake_clock.advance_seconds(0.002)
    snap = hypoprobe.snapshot()
    pending = TargetState(hid, "app.q:work", "config", "pending", processes=2)
    attached = TargetState(hid, "app.q:work", "config", "attached", processes=2)
    (v,) = analysis.report(replace(snap, targets=(pending, attached)), hypotheses=[hid]).verdicts
    assert v.verdict == "CONFIRMED"
    assert not [w for w in v.warnings if "pending" in w], v.warnings
    # Pending and attached nowhere: still said.
    (v,) = analysis.report(replace(snap, targets=(pending,)), hypotheses=[hid]).verdicts
    assert "target app.q:work is pending: its module was never imported" in v.warnings
