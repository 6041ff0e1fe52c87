"""Database probes through the DB-API proxy: sqlite3 always, psycopg 3 on a real PostgreSQL.

What a performance team relies on: only the statements a hypothesis names are timed,
queries that differ only in literals share one probe, the number of probe names stays
bounded, query time counts toward the enclosing endpoint's share, an N+1 loop shows as
calls per request, and the driver behaves exactly as before (results and exceptions).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import hypoprobe
from conftest import FakeClock
from hypoprobe import ConfigurationError
from hypoprobe.integrations import dbapi
from hypoprobe.integrations._fingerprint import MAX_LENGTH, OVERFLOW, fingerprint
from servers import PostgresServer, require_postgres, start_postgres

NO_ENDPOINT = "<none>"

# ------------------------------------------------------------------------ fingerprints


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("SELECT * FROM t WHERE id = 42", "SELECT * FROM t WHERE id = ?"),
        ("SELECT * FROM t WHERE name = 'O''Brien'", "SELECT * FROM t WHERE name = ?"),
        ("SELECT * FROM t WHERE x = -1.5e3", "SELECT * FROM t WHERE x = ?"),
        ("SELECT * FROM t WHERE id IN (1, 2, 3)", "SELECT * FROM t WHERE id IN (...)"),
        ("SELECT * FROM t WHERE id in (%s,%s)", "SELECT * FROM t WHERE id IN (...)"),
        ("SELECT a FROM t WHERE a = %(a)s AND b = $1", "SELECT a FROM t WHERE a = ? AND b = ?"),
        (
            "SELECT a FROM t WHERE a = :a AND b::int = ?",
            "SELECT a FROM t WHERE a = ? AND b::int = ?",
        ),
        ("SELECT  a\n  FROM t -- why\n WHERE /* c */ a = 1;", "SELECT a FROM t WHERE a = ?"),
        (
            "INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y')",
            "INSERT INTO t (a, b) VALUES (?, ?), ...",
        ),
        (
            'SELECT "col1", t2.x1 FROM "T2" WHERE $$a$$ = \'b\'',
            'SELECT "col1", t2.x1 FROM "T2" WHERE ? = ?',
        ),
        ("SELECT a - 1 FROM t", "SELECT a - ? FROM t"),
    ],
)
def test_fingerprint_strips_literals_placeholders_and_layout(statement: str, expected: str) -> None:
    assert fingerprint(statement) == expected


def test_fingerprint_length_is_bounded_and_long_statements_stay_distinct() -> None:
    columns = ", ".join(f"column_{i}" for i in range(100))
    a = fingerprint(f"SELECT {columns} FROM a")
    b = fingerprint(f"SELECT {columns} FROM b")
    assert len(a) <= MAX_LENGTH
    assert len(b) <= MAX_LENGTH
    assert a != b
    assert a.startswith("SELECT column_0, column_1")


# --------------------------------------------------------------------------- databases


@dataclass
class Db:
    """One driver under test: how to connect, its placeholder and its error class."""

    kind: str
    connect: Callable[[], Any]
    param: str
    error: type[Exception]


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    require_postgres()
    with start_postgres(tmp_path_factory.mktemp("pg")) as server:
        server.psql(
            "CREATE TABLE campaigns (id int PRIMARY KEY, account int, name text);"
            "CREATE TABLE accounts (id int PRIMARY KEY, name text);"
            "INSERT INTO campaigns SELECT i, i % 3, 'c' || i FROM generate_series(1, 30) i;"
            "INSERT INTO accounts SELECT i, 'a' || i FROM generate_series(0, 2) i;"
        )
        yield server


def _sqlite_connect() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.executescript(
        "CREATE TABLE campaigns (id int PRIMARY KEY, account int, name text);"
        "CREATE TABLE accounts (id int PRIMARY KEY, name text);"
    )
    conn.executemany(
        "INSERT INTO campaigns VALUES (?, ?, ?)", [(i, i % 3, f"c{i}") for i in range(1, 31)]
    )
    conn.executemany("INSERT INTO accounts VALUES (?, ?)", [(i, f"a{i}") for i in range(3)])
    return conn


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest) -> Iterator[Db]:
    opened: list[Any] = []
    if request.param == "sqlite":

        def connect() -> Any:
            opened.append(_sqlite_connect())
            return opened[-1]

        yield Db("sqlite", connect, "?", sqlite3.OperationalError)
    else:
        import psycopg

        server: PostgresServer = request.getfixturevalue("postgres")

        def connect() -> Any:
            opened.append(psycopg.connect(server.dsn, autocommit=True))
            return opened[-1]

        yield Db("postgres", connect, "%s", psycopg.errors.UndefinedTable)
    for conn in opened:
        conn.close()


@pytest.fixture
def hyp(unique_id: Callable[[str], str]) -> tuple[str, str]:
    """A fresh hypothesis about a fresh endpoint: (hypothesis id, endpoint name)."""
    hid, ep = unique_id("hyp"), unique_id("GET /campaigns")
    hypoprobe.hypothesis(hid, claim="the campaigns query", endpoint=ep, min_share=0.5)
    return hid, ep


def _probe_counts(hid: str, endpoint: str | None = None) -> dict[str, int]:
    """Calls per probe name of one hypothesis (in one endpoint, or summed over all)."""
    counts: dict[str, int] = {}
    for p in hypoprobe.snapshot().probes:
        if p.hypothesis == hid and (endpoint is None or p.endpoint == endpoint):
            counts[p.probe] = counts.get(p.probe, 0) + p.duration.count
    return {k: v for k, v in counts.items() if v}


# ------------------------------------------------------------------------------ tests


def test_matching_statements_are_probed_and_others_pass_through(
    db: Db, hyp: tuple[str, str]
) -> None:
    hid, _ = hyp
    conn = dbapi.instrument(db.connect(), hid, match=r"FROM campaigns")
    cur = conn.cursor()
    cur.execute(f"SELECT name FROM campaigns WHERE id = {db.param}", (3,))
    assert cur.fetchall() == [("c3",)]
    cur.execute(f"SELECT name FROM accounts WHERE id = {db.param}", (1,))
    assert cur.fetchall() == [("a1",)]

    probed = "SELECT name FROM campaigns WHERE id = ?"
    assert _probe_counts(hid) == {probed: 1, f"fetch: {probed}": 1}


def test_queries_differing_only_in_literals_share_one_probe(db: Db, hyp: tuple[str, str]) -> None:
    hid, _ = hyp
    conn = dbapi.instrument(db.connect(), hid, match=r"FROM campaigns")
    for ids in ("1", "2, 3", "4, 5, 6"):
        conn.execute(f"SELECT id FROM campaigns WHERE id IN ({ids}) AND name <> 'x'").fetchall()
    conn.execute("SELECT count(*) FROM campaigns WHERE account = 2").fetchone()
    conn.execute("SELECT count(*) FROM campaigns WHERE account = 1").fetchone()

    assert _probe_counts(hid) == {
        "SELECT id FROM campaigns WHERE id IN (...) AND name <> ?": 3,
        "fetch: SELECT id FROM campaigns WHERE id IN (...) AND name <> ?": 3,
        "SELECT count(*) FROM campaigns WHERE account = ?": 2,
        "fetch: SELECT count(*) FROM campaigns WHERE account = ?": 2,
    }


def test_distinct_fingerprints_are_capped_per_hypothesis(db: Db, hyp: tuple[str, str]) -> None:
    hid, _ = hyp
    conn = dbapi.instrument(db.connect(), hid, max_fingerprints=2)
    columns = ["id", "account", "name", "id + 1", "account * 2"]
    for column in columns:
        conn.execute(f"SELECT {column} FROM campaigns WHERE id = 1")

    counts = _probe_counts(hid)
    assert counts == {
        "SELECT id FROM campaigns WHERE id = ?": 1,
        "SELECT account FROM campaigns WHERE id = ?": 1,
        OVERFLOW: 3,
    }
    # The cap is per hypothesis, not per connection: a second connection overflows too.
    other = dbapi.instrument(db.connect(), hid, max_fingerprints=2)
    other.execute("SELECT name || 'x' FROM campaigns")
    assert _probe_counts(hid)[OVERFLOW] == 4


def test_n_plus_one_loop_shows_as_calls_per_request(db: Db, hyp: tuple[str, str]) -> None:
    hid, ep = hyp
    conn = dbapi.instrument(db.connect(), hid, match=r"FROM campaigns")
    by_account = f"SELECT id, name FROM campaigns WHERE account = {db.param}"
    conn.execute(by_account, (0,)).fetchall()  # resolve the probe before the first request

    def campaigns_page() -> None:
        with hypoprobe.endpoint(ep):
            accounts = conn.execute("SELECT id FROM accounts").fetchall()
            for (account_id,) in accounts:  # the N+1: one query per account
                conn.execute(by_account, (account_id,)).fetchall()

    for _ in range(4):
        campaigns_page()

    requests = {
        r.probe: r
        for r in hypoprobe.snapshot().requests
        if r.hypothesis == hid and r.endpoint == ep
    }
    calls = requests["SELECT id, name FROM campaigns WHERE account = ?"].calls
    assert calls.count == 4  # four requests...
    assert calls.sum == 12  # ...each running the per-account query three times
    assert calls.quantile(0.5) == pytest.approx(3, abs=1)


def test_query_time_counts_toward_the_endpoint_share(
    fake_clock: FakeClock, hyp: tuple[str, str]
) -> None:
    hid, ep = hyp
    raw = _sqlite_connect()

    # The query's cost is made exact: a SQL function that moves the fake clock 30 ms.
    def work(ms: int) -> int:
        fake_clock.advance(ms * 1_000_000)
        return 0

    raw.create_function("work", 1, work)
    conn = dbapi.instrument(raw, hid, match=r"FROM campaigns")
    query = "SELECT work(30) FROM campaigns WHERE id = 1"
    conn.execute(query)  # resolve the probe outside any request

    for _ in range(2):
        with hypoprobe.endpoint(ep):
            conn.execute(query).fetchall()
            conn.execute("SELECT work(20) FROM accounts WHERE id = 0").fetchall()  # not probed
            fake_clock.advance(50_000_000)

    moments = hypoprobe.snapshot().moments_for(hid, ep)
    assert moments.requests == 2
    assert moments.probe_seconds == pytest.approx(0.060)
    assert moments.endpoint_seconds == pytest.approx(0.200)
    assert moments.probe_seconds / moments.endpoint_seconds == pytest.approx(0.3)


def test_postgres_query_time_counts_toward_the_endpoint(
    postgres: PostgresServer, hyp: tuple[str, str]
) -> None:
    import psycopg

    hid, ep = hyp
    with psycopg.connect(postgres.dsn, autocommit=True) as raw:
        conn = dbapi.instrument(raw, hid, match=r"pg_sleep", name="slow query")
        with hypoprobe.endpoint(ep):
            conn.execute("SELECT pg_sleep(0.05)").fetchone()

    moments = hypoprobe.snapshot().moments_for(hid, ep)
    assert moments.requests == 1
    assert moments.probe_seconds >= 0.05  # the server slept at least that long
    assert moments.probe_seconds <= moments.endpoint_seconds


def test_driver_exceptions_pass_through_unchanged_and_are_counted(
    db: Db, hyp: tuple[str, str]
) -> None:
    hid, _ = hyp
    bad = "SELECT * FROM campaigns_missing WHERE id = 1"
    plain = db.connect()
    with pytest.raises(db.error) as expected:
        plain.cursor().execute(bad)
    if db.kind == "postgres":
        plain.rollback()

    conn = dbapi.instrument(db.connect(), hid, match=r"FROM campaigns")
    cur = conn.cursor()
    with pytest.raises(db.error) as raised:
        cur.execute(bad)
    assert type(raised.value) is type(expected.value)
    assert str(raised.value) == str(expected.value)

    counts = {
        (x.probe, x.exception): x.count
        for x in hypoprobe.snapshot().exceptions
        if x.hypothesis == hid
    }
    cls = type(raised.value)
    assert counts == {
        ("SELECT * FROM campaigns_missing WHERE id = ?", f"{cls.__module__}.{cls.__qualname__}"): 1
    }


def test_proxy_is_transparent_to_the_code_using_the_connection(
    db: Db, hyp: tuple[str, str]
) -> None:
    hid, _ = hyp
    raw = db.connect()
    conn = dbapi.instrument(raw, hid, match=r"FROM campaigns", name="campaigns")
    assert isinstance(conn, type(raw))
    cur = conn.cursor()
    assert isinstance(cur, type(raw.cursor()))
    assert cur.execute("SELECT id FROM campaigns WHERE id < 4 ORDER BY id") is cur
    assert cur.fetchone() == (1,)
    assert cur.fetchmany(1) == [(2,)]
    assert list(cur) == [(3,)]
    assert [row for row in conn.execute("SELECT id FROM campaigns WHERE id < 3 ORDER BY id")] == [
        (1,),
        (2,),
    ]
    cur.executemany(
        f"UPDATE campaigns SET name = name WHERE id = {db.param}", [(1,), (2,)]
    )  # no "FROM campaigns": not probed
    cur.executemany(
        f"DELETE FROM campaigns WHERE id = {db.param} AND id < 0", [(1,), (2,)]
    )  # probed: executemany is one call

    # One name for every matching statement; the fetches are a probe of their own.
    assert _probe_counts(hid) == {"campaigns": 3, "fetch: campaigns": 4}
    # `with connection` (a transaction in sqlite3, closing in psycopg) yields the proxy.
    with conn as entered:
        assert entered is conn


def test_sqlite_cursor_stays_its_own_iterator(hyp: tuple[str, str]) -> None:
    hid, _ = hyp
    conn = dbapi.instrument(_sqlite_connect(), hid, match=r"FROM campaigns")
    cur = conn.execute("SELECT id FROM campaigns WHERE id < 3 ORDER BY id")
    assert next(cur) == (1,)
    assert cur.fetchall() == [(2,)]


def test_psycopg_cursor_context_manager_returns_the_proxy(
    postgres: PostgresServer, hyp: tuple[str, str]
) -> None:
    import psycopg

    hid, _ = hyp
    with psycopg.connect(postgres.dsn) as raw:
        conn = dbapi.instrument(raw, hid, match=r"FROM campaigns", name="campaigns")
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM campaigns")
            assert cur.fetchone() == (30,)
    assert _probe_counts(hid) == {"campaigns": 1, "fetch: campaigns": 1}


def test_callable_matcher_and_matcher_faults(hyp: tuple[str, str]) -> None:
    hid, _ = hyp
    conn = dbapi.instrument(_sqlite_connect(), hid, match=lambda sql: "accounts" in sql)
    conn.execute("SELECT id FROM accounts WHERE id = 1")
    conn.execute("SELECT id FROM campaigns WHERE id = 1")
    assert _probe_counts(hid) == {"SELECT id FROM accounts WHERE id = ?": 1}

    def broken(sql: str) -> bool:
        raise RuntimeError("a bug in the matcher")

    before = hypoprobe.snapshot().internal_errors.get("dbapi_statement", 0)
    faulty = dbapi.instrument(_sqlite_connect(), hid, match=broken)
    # The application's query still runs; the fault is counted, never raised.
    assert faulty.execute("SELECT count(*) FROM accounts").fetchone() == (3,)
    assert hypoprobe.snapshot().internal_errors.get("dbapi_statement", 0) == before + 1


def test_bad_instrumentation_arguments_raise_configuration_errors(tmp_path: Path) -> None:
    conn = _sqlite_connect()
    with pytest.raises(ConfigurationError, match="regular expression"):
        dbapi.instrument(conn, "PERF-1", match="FROM (campaigns")
    with pytest.raises(ConfigurationError, match="DB-API"):
        dbapi.instrument(object(), "PERF-1")
    with pytest.raises(ConfigurationError, match="hypothesis id"):
        dbapi.instrument(conn, "not an id")
    with pytest.raises(ConfigurationError, match="max_fingerprints"):
        dbapi.instrument(conn, "PERF-1", max_fingerprints=0)


def test_psycopg_async_connection_is_probed_around_awaited_calls(
    postgres: PostgresServer, hyp: tuple[str, str]
) -> None:
    import psycopg

    hid, ep = hyp

    async def page() -> list[Any]:
        raw = await psycopg.AsyncConnection.connect(postgres.dsn, autocommit=True)
        async with dbapi.instrument(raw, hid, match=r"FROM campaigns") as conn:
            assert isinstance(conn, psycopg.AsyncConnection)
            with hypoprobe.endpoint(ep):
                cur = await conn.execute("SELECT id FROM campaigns WHERE id < 3 ORDER BY id")
                first = await cur.fetchall()
                async with conn.cursor() as cur2:
                    assert (
                        await cur2.execute("SELECT pg_sleep(0.02) FROM campaigns LIMIT 1") is cur2
                    )
                    rows = [row async for row in cur2]
                await conn.execute("SELECT 1")  # not matched
            return [first, rows]

    assert asyncio.run(page()) == [[(1,), (2,)], [("",)]]
    assert _probe_counts(hid, ep) == {
        "SELECT id FROM campaigns WHERE id < ? ORDER BY id": 1,
        "fetch: SELECT id FROM campaigns WHERE id < ? ORDER BY id": 1,
        "SELECT pg_sleep(?) FROM campaigns LIMIT ?": 1,
        "fetch: SELECT pg_sleep(?) FROM campaigns LIMIT ?": 1,
    }
    # The awaited time is measured, not the time to create the coroutine.
    assert hypoprobe.snapshot().moments_for(hid, ep).probe_seconds >= 0.02


def test_several_hypotheses_share_a_connection_but_one_is_not_instrumented_twice(
    unique_id: Callable[[str], str],
) -> None:
    first, second = unique_id("A"), unique_id("B")
    conn = dbapi.instrument(_sqlite_connect(), first, match=r"FROM campaigns", name="q")
    both = dbapi.instrument(conn, second, match=r"count", name="q")
    both.execute("SELECT count(*) FROM campaigns").fetchone()
    both.execute("SELECT id FROM campaigns WHERE id = 1").fetchone()
    assert _probe_counts(first) == {"q": 2, "fetch: q": 2}
    assert _probe_counts(second) == {"q": 1, "fetch: q": 1}
    with pytest.raises(ConfigurationError, match="already instrumented"):
        dbapi.instrument(both, first)


def _probe_seconds(hid: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for p in hypoprobe.snapshot().probes:
        if p.hypothesis == hid:
            out[p.probe] = out.get(p.probe, 0.0) + p.duration.sum
    return {k: v for k, v in out.items() if v}


def test_stacked_proxies_time_each_driver_call_once_for_every_layer(
    unique_id: Callable[[str], str],
) -> None:
    # A statement's time is the driver's execute, and separately its fetches, measured
    # once: one layer's lookup and recording never falls inside another layer's time, so
    # every hypothesis on a connection (and the survey over them) reads the same seconds.
    first, second, ep = unique_id("A"), unique_id("B"), unique_id("GET /stacked")
    conn = dbapi.instrument(_sqlite_connect(), first, match=r"FROM campaigns")
    both = dbapi.instrument(conn, second, match=r"FROM campaigns")
    with hypoprobe.endpoint(ep):
        both.execute("SELECT name FROM campaigns WHERE id = ?", (1,)).fetchall()
        cur = both.cursor()
        cur.execute("SELECT id, name FROM campaigns ORDER BY id")
        rows = list(cur)
        cur.execute("SELECT count(*) FROM campaigns WHERE account = ?", (2,))
        assert cur.fetchone() == (10,)
    assert len(rows) == 30
    a, b = _probe_seconds(first), _probe_seconds(second)
    assert len(a) == 6  # three statements, each with its fetch
    assert a == b
    assert _probe_counts(first) == _probe_counts(second)


def test_stacked_psycopg_async_proxies_time_each_awaited_call_once(
    postgres: PostgresServer, unique_id: Callable[[str], str]
) -> None:
    import psycopg

    first, second, ep = unique_id("A"), unique_id("B"), unique_id("GET /stacked-async")

    async def page() -> list[Any]:
        raw = await psycopg.AsyncConnection.connect(postgres.dsn, autocommit=True)
        inner = dbapi.instrument(raw, first, match=r"FROM campaigns")
        async with dbapi.instrument(inner, second, match=r"FROM campaigns") as conn:
            with hypoprobe.endpoint(ep):
                cur = await conn.execute("SELECT id FROM campaigns WHERE id < 3 ORDER BY id")
                rows = await cur.fetchall()
                async with conn.cursor() as cur2:
                    assert await cur2.execute("SELECT pg_sleep(0.01) FROM campaigns LIMIT 1")
                    assert await cur2.fetchone() == ("",)
            return list(rows)

    assert asyncio.run(page()) == [(1,), (2,)]
    a, b = _probe_seconds(first), _probe_seconds(second)
    assert len(a) == 4
    assert a == b
    assert sum(a.values()) >= 0.01  # the awaited time, not the coroutine's creation


def test_psycopg_composed_and_bytes_statements_are_matched_by_their_text(
    postgres: PostgresServer, hyp: tuple[str, str]
) -> None:
    import psycopg
    from psycopg import sql

    hid, _ = hyp
    with psycopg.connect(postgres.dsn, autocommit=True) as raw:
        conn = dbapi.instrument(raw, hid, match=r"FROM campaigns")
        query = sql.SQL("SELECT {} FROM campaigns WHERE id = %s").format(sql.Identifier("name"))
        assert conn.execute(query, (4,)).fetchone() == ("c4",)
        assert conn.execute(b"SELECT name FROM campaigns WHERE id = 5").fetchone() == ("c5",)

    counts = _probe_counts(hid)
    assert counts['SELECT "name" FROM campaigns WHERE id = ?'] == 1
    assert counts["SELECT name FROM campaigns WHERE id = ?"] == 1
