"""Database probes through SQLAlchemy 2.x engine events, on sqlite and a real PostgreSQL.

The ORM compiles the SQL; the listeners see what reaches the driver, so the same matcher
and fingerprint rules apply as for the DB-API proxy, and an ORM lazy-load N+1 shows up as
calls per request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, ForeignKey, create_engine, event, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

import hypoprobe
from conftest import FakeClock
from hypoprobe import ConfigurationError
from hypoprobe.integrations.sqlalchemy import instrument_engine, uninstrument_engine
from servers import PostgresServer, require_postgres, start_postgres


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    campaigns: Mapped[list[Campaign]] = relationship(lazy="select", order_by="Campaign.id")


class Campaign(Base):
    __tablename__ = "campaigns"
    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    name: Mapped[str]


def _fill(engine: Engine) -> None:
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        for a in range(3):
            session.add(Account(id=a, name=f"a{a}"))
        session.flush()
        for c in range(1, 31):
            session.add(Campaign(id=c, account_id=c % 3, name=f"c{c}"))
        session.commit()


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    require_postgres()
    with start_postgres(tmp_path_factory.mktemp("pg")) as server:
        engine = create_engine(server.dsn.replace("postgresql://", "postgresql+psycopg://"))
        _fill(engine)
        engine.dispose()
        yield server


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        made = create_engine(f"sqlite:///{tmp_path / 'app.db'}")
        _fill(made)
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        made = create_engine(server.dsn.replace("postgresql://", "postgresql+psycopg://"))
    yield made
    uninstrument_engine(made)
    made.dispose()


@pytest.fixture
def hyp(unique_id: Callable[[str], str]) -> tuple[str, str]:
    hid, ep = unique_id("hyp"), unique_id("GET /accounts")
    hypoprobe.hypothesis(hid, claim="the campaigns lazy load", endpoint=ep, min_share=0.5)
    return hid, ep


def _probe_counts(hid: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in hypoprobe.snapshot().probes:
        if p.hypothesis == hid:
            counts[p.probe] = counts.get(p.probe, 0) + p.duration.count
    return {k: v for k, v in counts.items() if v}


def test_matching_statements_are_probed_and_share_a_fingerprint(
    engine: Engine, hyp: tuple[str, str]
) -> None:
    hid, _ = hyp
    instrument_engine(engine, hid, match=r"FROM campaigns")
    with engine.connect() as conn:
        for account in (1, 2):
            conn.execute(text(f"SELECT count(*) FROM campaigns WHERE account_id = {account}"))
        conn.execute(select(Campaign.name).where(Campaign.id == 5)).all()
        conn.execute(select(Account.name).where(Account.id == 1)).all()  # not matched

    counts = _probe_counts(hid)
    assert counts.pop("SELECT count(*) FROM campaigns WHERE account_id = ?") == 2
    # The ORM's compiled statement, with its bound parameter normalised.
    [(name, calls)] = counts.items()
    assert calls == 1
    assert name.startswith("SELECT campaigns.name FROM campaigns WHERE campaigns.id = ?")


def test_orm_lazy_load_n_plus_one_shows_as_calls_per_request(
    engine: Engine, hyp: tuple[str, str]
) -> None:
    hid, ep = hyp
    instrument_engine(engine, hid, match=r"FROM campaigns", name="campaigns lazy load")

    def accounts_page() -> int:
        with hypoprobe.endpoint(ep), Session(engine) as session:
            accounts = session.scalars(select(Account).order_by(Account.id)).all()
            return sum(len(a.campaigns) for a in accounts)  # one query per account

    assert [accounts_page() for _ in range(3)] == [30, 30, 30]

    [request] = [
        r for r in hypoprobe.snapshot().requests if r.hypothesis == hid and r.endpoint == ep
    ]
    assert request.probe == "campaigns lazy load"
    assert request.calls.count == 3  # three requests
    assert request.calls.sum == 9  # three lazy loads each: N+1 with N = 3 accounts


def test_query_time_counts_toward_the_endpoint_share(
    fake_clock: FakeClock, hyp: tuple[str, str], tmp_path: Path
) -> None:
    hid, ep = hyp
    engine = create_engine(f"sqlite:///{tmp_path / 'share.db'}")

    @event.listens_for(engine, "connect")
    def add_work(dbapi_connection: object, record: object) -> None:
        # A SQL function that costs exactly `ms` of fake time makes the share exact.
        def work(ms: int) -> int:
            fake_clock.advance(ms * 1_000_000)
            return 0

        dbapi_connection.create_function("work", 1, work)  # type: ignore[attr-defined]

    _fill(engine)
    instrument_engine(engine, hid, match=r"FROM campaigns", name="campaign query")
    try:
        with engine.connect() as conn:
            for _ in range(2):
                with hypoprobe.endpoint(ep):
                    conn.execute(text("SELECT work(25) FROM campaigns WHERE id = 1")).all()
                    fake_clock.advance(75_000_000)
    finally:
        uninstrument_engine(engine)
        engine.dispose()

    moments = hypoprobe.snapshot().moments_for(hid, ep)
    assert moments.requests == 2
    assert moments.probe_seconds == pytest.approx(0.050)
    assert moments.probe_seconds / moments.endpoint_seconds == pytest.approx(0.25)


def test_driver_exceptions_pass_through_and_are_counted(
    engine: Engine, hyp: tuple[str, str]
) -> None:
    hid, _ = hyp
    instrument_engine(engine, hid, match=r"FROM campaigns")
    with engine.connect() as conn, pytest.raises(DBAPIError) as raised:
        conn.execute(text("SELECT nope FROM campaigns"))
    original = type(raised.value.orig)

    [count] = [x for x in hypoprobe.snapshot().exceptions if x.hypothesis == hid]
    assert count.probe == "SELECT nope FROM campaigns"
    assert count.exception == f"{original.__module__}.{original.__qualname__}"
    assert count.count == 1
    assert _probe_counts(hid) == {"SELECT nope FROM campaigns": 1}


def test_uninstrument_stops_probing(engine: Engine, hyp: tuple[str, str]) -> None:
    hid, _ = hyp
    instrument_engine(engine, hid, name="all statements")
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    uninstrument_engine(engine)
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert _probe_counts(hid) == {"all statements": 1}


def test_bad_arguments_raise_configuration_errors() -> None:
    engine = create_engine("sqlite://")
    with pytest.raises(ConfigurationError, match="Engine"):
        instrument_engine(object(), "PERF-1")
    with pytest.raises(ConfigurationError, match="regular expression"):
        instrument_engine(engine, "PERF-1", match="(")
    with pytest.raises(ConfigurationError, match="hypothesis id"):
        instrument_engine(engine, "no spaces allowed")


def test_an_engine_is_not_instrumented_twice_for_one_hypothesis(
    unique_id: Callable[[str], str],
) -> None:
    engine = create_engine("sqlite://")
    hid = unique_id("PERF")
    instrument_engine(engine, hid)
    instrument_engine(engine, unique_id("OTHER"))  # another hypothesis is fine
    with pytest.raises(ConfigurationError, match="already instrumented"):
        instrument_engine(engine, hid)
    uninstrument_engine(engine)
    instrument_engine(engine, hid)  # fine again once removed
    uninstrument_engine(engine)
