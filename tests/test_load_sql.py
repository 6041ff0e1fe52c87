"""SQL probes from the TOML file: ``sql = [regex, ...]`` on a ``[[hypothesis]]``.

The matchers apply to every SQLAlchemy engine (class-level listeners, engines created
before the load included) and every sqlite3 connection opened after it, with the same
fingerprints as the in-code integrations; unload() stops probing new statements.
"""

from __future__ import annotations

import sqlite3
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

import hypoprobe
from hypoprobe import ConfigurationError
from servers import require_postgres, start_postgres


def _toml(hid: str, endpoint: str, sql: str) -> str:
    return textwrap.dedent(
        f"""\
        [[hypothesis]]
        id = "{hid}"
        claim = "the followers query dominates {endpoint}"
        endpoint = "{endpoint}"
        min_share = 0.5
        sql = {sql}
        """
    )


@pytest.fixture
def write(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    def make(body: str) -> Path:
        path = tmp_path / "perf.toml"
        path.write_text(body)
        return path

    yield make
    hypoprobe.unload()


def _calls(hid: str, endpoint: str) -> dict[str, int]:
    snap = hypoprobe.snapshot()
    return {
        p.probe: p.duration.count
        for p in snap.probes
        if p.hypothesis == hid and p.endpoint == endpoint and p.duration.count
    }


def test_sql_matchers_probe_sqlite3_and_every_sqlalchemy_engine(
    write: Callable[[str], Path], unique_id: Callable[..., str]
) -> None:
    hid, ep = unique_id(), unique_id("ep")
    engine_before = create_engine("sqlite://")  # created before the load: covered too
    hypoprobe.load(write(_toml(hid, ep, '["FROM followers", "JOIN followers"]')))
    engine_after = create_engine("sqlite://")
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE followers (a INTEGER)")
    with hypoprobe.endpoint(ep):
        for engine in (engine_before, engine_after):
            with engine.connect() as c:
                c.execute(text("CREATE TABLE followers (a INTEGER)"))
                c.execute(text("SELECT a FROM followers WHERE a = 1")).fetchall()
                c.execute(text("SELECT 1")).fetchall()  # not matched
        # Matched by both patterns: timed once.
        conn.execute("SELECT f.a FROM followers f JOIN followers g ON f.a = g.a").fetchall()
    calls = _calls(hid, ep)
    assert calls["SELECT a FROM followers WHERE a = ?"] == 2
    assert calls["SELECT f.a FROM followers f JOIN followers g ON f.a = g.a"] == 1
    assert not any(name.startswith("SELECT ?") for name in calls)

    hypoprobe.unload()
    with hypoprobe.endpoint(ep), engine_after.connect() as c:
        c.execute(text("SELECT a FROM followers WHERE a = 2")).fetchall()
    assert _calls(hid, ep)["SELECT a FROM followers WHERE a = ?"] == 2  # no longer probed
    assert not hasattr(sqlite3.connect(":memory:"), "__wrapped__")


def test_an_engine_instrumented_by_hand_is_not_timed_twice(
    write: Callable[[str], Path], unique_id: Callable[..., str]
) -> None:
    from hypoprobe.integrations.sqlalchemy import instrument_engine, uninstrument_engine

    hid, ep = unique_id(), unique_id("ep")
    engine = create_engine("sqlite://")
    instrument_engine(engine, hid, match="FROM followers")
    try:
        hypoprobe.load(write(_toml(hid, ep, '["FROM followers"]')))
        with hypoprobe.endpoint(ep), engine.connect() as c:
            c.execute(text("CREATE TABLE followers (a INTEGER)"))
            c.execute(text("SELECT a FROM followers")).fetchall()
        assert _calls(hid, ep) == {"SELECT a FROM followers": 1}
    finally:
        uninstrument_engine(engine)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"FROM followers"', "field 'sql' must be a list of regular expressions"),
        ('["FROM (followers"]', "field 'sql': match='FROM (followers' is not a valid regular"),
        ('[""]', "field 'sql' must be a list"),
    ],
)
def test_a_bad_sql_value_names_the_file_and_line(
    write: Callable[[str], Path], unique_id: Callable[..., str], value: str, message: str
) -> None:
    path = write(_toml(unique_id(), unique_id("ep"), value))
    with pytest.raises(ConfigurationError) as info:
        hypoprobe.load(path)
    assert str(info.value).startswith(f"{path}:6: {message}")


@pytest.mark.real_server
def test_psycopg_connections_and_sqlalchemy_on_psycopg_are_probed_once(
    tmp_path: Path, write: Callable[[str], Path], unique_id: Callable[..., str]
) -> None:
    require_postgres()
    import psycopg

    hid, ep = unique_id(), unique_id("ep")
    with start_postgres(tmp_path / "pg") as pg:
        hypoprobe.load(write(_toml(hid, ep, '["FROM followers"]')))
        engine = create_engine(f"postgresql+psycopg://{pg.dsn.removeprefix('postgresql://')}")
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE followers (a INTEGER)")
            with hypoprobe.endpoint(ep):
                conn.execute("SELECT a FROM followers WHERE a = %s", (1,)).fetchall()
                # SQLAlchemy opens its connection with psycopg.connect too: its listeners
                # time the statement, the DB-API proxy stays out of it.
                with engine.connect() as c:
                    c.execute(text("SELECT a FROM followers WHERE a = 2")).fetchall()
        engine.dispose()
        calls = _calls(hid, ep)
        assert calls["SELECT a FROM followers WHERE a = ?"] == 2
        assert calls["fetch: SELECT a FROM followers WHERE a = ?"] == 1  # the DB-API one


def test_an_engine_with_a_creator_is_timed_by_its_listeners_only(
    write: Callable[[str], Path], unique_id: Callable[..., str]
) -> None:
    hid, ep = unique_id(), unique_id("ep")
    hypoprobe.load(write(_toml(hid, ep, '["FROM followers"]')))
    # The creator calls the patched sqlite3.connect: SQLAlchemy's listeners still time
    # its statements, and the DB-API proxy stays out.
    engine = create_engine("sqlite://", creator=lambda: sqlite3.connect(":memory:"))
    with hypoprobe.endpoint(ep), engine.connect() as c:
        c.execute(text("CREATE TABLE followers (a INTEGER)"))
        c.execute(text("SELECT a FROM followers")).fetchall()
    assert _calls(hid, ep) == {"SELECT a FROM followers": 1}
